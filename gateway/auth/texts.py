"""Texts of the login pages and of auth's reason codes, German and English.

One table, keyed by a stable id; pages call ``t("id")`` and JSON errors look up
the reason code here first (then in the policy's catalogue). German is the
portal's first language; English is complete too.
"""

from __future__ import annotations

__all__ = ["LANGUAGES", "REASON_TEXTS", "UI_TEXTS", "reason_text", "text"]

LANGUAGES = ("de", "en")

#: reason code -> (de, en)
REASON_TEXTS: dict[str, tuple[str, str]] = {
    "invalid_credentials": (
        "Anmeldename oder Passwort ist falsch.",
        "The login name or password is wrong.",
    ),
    # Said on TOTP pages too, where nobody can "request" a code: no advice to ask for one here.
    "invalid_code": (
        "Der Code ist nicht gültig. Bitte prüfen Sie ihn und versuchen Sie es noch einmal.",
        "The code is not valid. Please check it and try again.",
    ),
    "sms_code_required": (
        "Bitte geben Sie auch den Code aus der SMS an Ihre Rufnummer ein.",
        "Please also enter the code from the text message to your number.",
    ),
    "invalid_sms_code": (
        "Der SMS-Code ist nicht gültig. Erzeugen Sie einen neuen Schlüssel, dann kommt ein neuer Code.",
        "The text message code is not valid. Create a new key to receive a new code.",
    ),
    "no_line_for_possession": (
        "Zu Ihrem Konto gibt es keine Rufnummer für den SMS-Code. Bitte wenden Sie sich an die Hotline.",
        "Your account has no phone number for the text message code. Please call the hotline.",
    ),
    "line_not_of_account": (
        "Diese Rufnummer gehört nicht zu Ihrem Konto.",
        "This number does not belong to your account.",
    ),
    "registration_failed": (
        "Die Angaben passen nicht zusammen. Bitte prüfen Sie Kennung und Nachweis.",
        "The details do not match. Please check the identifier and the proof.",
    ),
    "session_required": ("Bitte melden Sie sich an.", "Please log in."),
    "session_invalid": (
        "Ihre Sitzung ist abgelaufen. Bitte melden Sie sich an.",
        "Your session has expired. Please log in.",
    ),
    "login_pending": (
        "Bitte schließen Sie die Anmeldung mit Ihrem Code ab.",
        "Please finish the login with your code.",
    ),
    "login_taken": ("Dieser Anmeldename ist schon vergeben.", "This login name is already taken."),
    "already_registered": (
        "Für diese Rufnummer gibt es bereits ein Konto. Bitte melden Sie sich an.",
        "There is already an account for this number. Please log in.",
    ),
    "password_too_short": (
        "Das Passwort muss mindestens 12 Zeichen lang sein.",
        "The password must have at least 12 characters.",
    ),
    "password_too_long": ("Das Passwort ist zu lang.", "The password is too long."),
    "password_is_identifier": (
        "Das Passwort darf nicht Ihre Kennung oder Ihr Anmeldename sein.",
        "The password must not be your identifier or login name.",
    ),
    "password_too_common": (
        "Dieses Passwort ist zu verbreitet. Bitte wählen Sie ein anderes.",
        "This password is too common. Please choose another one.",
    ),
    "bad_login": (
        "Bitte geben Sie einen Anmeldenamen an (E-Mail-Adresse oder Name, mindestens 3 Zeichen).",
        "Please give a login name (e-mail address or name, at least 3 characters).",
    ),
    "bad_proof_type": ("Bitte wählen Sie die Art des Nachweises.", "Please choose the kind of proof."),
    "bad_method": ("Bitte wählen Sie TOTP oder SMS.", "Please choose TOTP or SMS."),
    "bad_request": ("Bitte füllen Sie alle Felder aus.", "Please fill in all fields."),
    "invalid_msisdn": (
        "Das ist keine Rufnummer. Beispiel: 0664 123 45 67 oder +43 664 123 45 67.",
        "That is not a phone number. Example: 0664 123 45 67 or +43 664 123 45 67.",
    ),
    "json_required": ("Die Anfrage muss JSON sein.", "The request must be JSON."),
    "csrf_failed": (
        "Das Formular ist abgelaufen oder kam von einer fremden Seite. Bitte versuchen Sie es erneut.",
        "The form has expired or came from another site. Please try again.",
    ),
    "cross_site_request": (
        "Anfragen von fremden Seiten sind nicht erlaubt.",
        "Requests from other sites are not allowed.",
    ),
    "origin_null": (
        "Diese Anfrage kam von einer Seite ohne erkennbare Herkunft und wurde abgelehnt.",
        "This request came from a page without a known origin and was refused.",
    ),
    "origin_missing": (
        "Die Anfrage nennt ihre Herkunft nicht. Bitte nutzen Sie die Seiten des Portals "
        "oder melden Sie Apps mit einem Token an (Authorization: Bearer).",
        "The request does not say where it comes from. Please use the portal's pages, "
        "or let apps send a token (Authorization: Bearer).",
    ),
    "sms_unavailable": (
        "SMS können gerade nicht versendet werden. Bitte versuchen Sie es später.",
        "Text messages cannot be sent right now. Please try again later.",
    ),
    "registration_not_possible": (
        "Mit diesem Nachweis ist für diese Kennung keine Registrierung möglich.",
        "This proof does not allow a registration for this identifier.",
    ),
}

#: UI text id -> (de, en)
UI_TEXTS: dict[str, tuple[str, str]] = {
    "portal": ("Kundenportal", "Customer portal"),
    "login_title": ("Anmelden", "Log in"),
    "login_name": ("Anmeldename (E-Mail oder Name)", "Login name (e-mail or name)"),
    "password": ("Passwort", "Password"),
    "password_hint": ("Mindestens 12 Zeichen.", "At least 12 characters."),
    "submit_login": ("Anmelden", "Log in"),
    "sms_login": ("Mit SMS-Code anmelden", "Log in with an SMS code"),
    "sms_login_note": (
        "Eine SMS-Anmeldung ist eingeschränkt auf die eine Rufnummer (Benutzer-Login).",
        "An SMS login is restricted to that one number (user login).",
    ),
    "oidc_login": ("Mit Single Sign-On anmelden", "Log in with single sign-on"),
    "no_account": ("Noch kein Konto?", "No account yet?"),
    "register": ("Registrieren", "Register"),
    "totp_title": ("Code aus der Authenticator-App", "Code from your authenticator app"),
    "totp_code": ("6-stelliger Code", "6-digit code"),
    "confirm": ("Bestätigen", "Confirm"),
    "msisdn": ("Rufnummer (z. B. 436641000040)", "Phone number (e.g. 436641000040)"),
    "send_code": ("Code senden", "Send code"),
    "send_new_code": ("Neuen Code senden", "Send a new code"),
    "sms_sent": (
        "Wenn die Rufnummer bei uns bekannt ist, haben Sie eine SMS mit einem Code erhalten.",
        "If we know this number, a text message with a code is on its way.",
    ),
    "sms_code": ("Code aus der SMS", "Code from the text message"),
    "register_title": ("Registrierung", "Registration"),
    "register_who": ("Wer sind Sie?", "Who are you?"),
    "role_holder": (
        "Vertragsinhaber:in oder befugte Person (mit Kundenkennwort)",
        "Contract holder or authorised person (with customer password)",
    ),
    "role_member": (
        "Business Member (mit PUK oder aktueller Rechnungsnummer)",
        "Business Member (with PUK or current invoice number)",
    ),
    "role_split": (
        "Rechnungstrennung, Privatteil (mit PUK oder aktueller Rechnungsnummer)",
        "Invoice split, private part (with PUK or current invoice number)",
    ),
    "role_line": (
        "Diensthandy oder Firmenteil (Benutzer-Login per SMS-Code)",
        "Company phone or business part (user login by SMS code)",
    ),
    "identifier": ("Rufnummer oder Kundennummer", "Phone number or customer number"),
    "identifier_line": ("Rufnummer", "Phone number"),
    "proof_type": ("Nachweis", "Proof"),
    "proof": (
        "Nachweis (Kennwort, PUK, Rechnungsnummer oder SMS-Code)",
        "Proof (password, PUK, invoice number or SMS code)",
    ),
    "kundenkennwort": ("Kundenkennwort", "Customer password"),
    "puk": ("PUK der SIM-Karte", "PUK of the SIM card"),
    "invoice_number": (
        "Aktuelle Rechnungsnummer (z. B. RE-2026-110021)",
        "Current invoice number (e.g. RE-2026-110021)",
    ),
    "sms_tan": ("SMS-Code", "SMS code"),
    "new_password": ("Neues Portal-Passwort", "New portal password"),
    "submit_register": ("Konto anlegen", "Create account"),
    "account_title": ("Mein Konto", "My account"),
    "logged_in_as": ("Angemeldet als", "Logged in as"),
    "access_level": ("Zugriff", "Access"),
    "access_full": ("voll", "full"),
    "access_restricted": ("eingeschränkt (Benutzer-Login)", "restricted (user login)"),
    "totp_status": ("Authenticator-App (TOTP)", "Authenticator app (TOTP)"),
    "totp_on": ("eingerichtet", "set up"),
    "totp_off": ("nicht eingerichtet", "not set up"),
    "totp_setup": ("Authenticator-App einrichten", "Set up an authenticator app"),
    "totp_replace": (
        "Authenticator-App ersetzen (mit frischer Bestätigung)",
        "Replace the authenticator app (needs a fresh confirmation)",
    ),
    "enroll_title": ("Authenticator-App einrichten", "Set up an authenticator app"),
    "enroll_start": ("Neuen Schlüssel erzeugen", "Create a new key"),
    "enroll_scan": (
        "Scannen Sie den QR-Code mit Ihrer Authenticator-App oder geben Sie den Schlüssel ein.",
        "Scan the QR code with your authenticator app or type in the key.",
    ),
    "enroll_secret": ("Schlüssel", "Key"),
    "enroll_sms_note": (
        "Zur Bestätigung, dass Sie die Rufnummer besitzen, haben wir einen Code per SMS gesendet an",
        "To confirm that you hold the line, we sent a code by text message to",
    ),
    "enroll_sms_code": ("Code aus der SMS", "Code from the text message"),
    "enroll_done": ("Die Authenticator-App ist eingerichtet.", "The authenticator app is set up."),
    "step_up_title": ("Aktion bestätigen", "Confirm the action"),
    "step_up_note": (
        "Für diese Aktion brauchen wir einen zweiten Faktor (gültig 10 Minuten).",
        "This action needs a second factor (valid for 10 minutes).",
    ),
    "method": ("Verfahren", "Method"),
    "step_up_line": ("Rufnummer für den SMS-Code", "Number for the text message code"),
    "step_up_code": ("Code (Authenticator-App oder SMS)", "Code (authenticator app or text message)"),
    "step_up_enrol": (
        "Noch keine Authenticator-App? Jetzt einrichten",
        "No authenticator app yet? Set one up now",
    ),
    "method_totp": ("Authenticator-App", "Authenticator app"),
    "method_sms": ("SMS-Code", "SMS code"),
    "logout": ("Abmelden", "Log out"),
    "logout_everywhere": ("Überall abmelden", "Log out everywhere"),
    "logged_out": ("Sie sind abgemeldet.", "You are logged out."),
    "registered": ("Ihr Konto ist angelegt.", "Your account has been created."),
    "error": ("Fehler", "Error"),
    "language": ("Sprache", "Language"),
    "back": ("Zurück", "Back"),
    "skip": ("Zum Inhalt springen", "Skip to content"),
    "business_station": ("Zu My Business Station", "Go to My Business Station"),
}


def text(key: str, language: str) -> str:
    de, en = UI_TEXTS.get(key, (key, key))
    return en if language == "en" else de


def reason_text(reason: str, language: str) -> str | None:
    pair = REASON_TEXTS.get(reason)
    if pair is None:
        return None
    return pair[1] if language == "en" else pair[0]
