# portal.polar: who may do what in the business self-care portal.
#
# The rules are docs/domain.md sections 1-3. How the gateway uses this file:
#   1. has_relation(user, resource)  false       -> not_found (404; existence never leaks)
#   2. allow(user, action, resource) true        -> allow
#   3. step_up(user, action, resource) true      -> step_up (401, second factor needed;
#                                                   asked only for "critical" actions)
#   4. deny_reason(user, action, resource, why)  -> deny (403) with that reason code
#                                                   ("not_permitted" when none matches)
# Every action is declared once with its kind (permission/2); `policy check` refuses
# an allow rule for an undeclared action, a declared action nobody can reach, and a
# route in config/routes.toml whose action is not declared here.
#
# Classes (gateway/policy/model.py): User (the caller: customers it has full reach on,
# own_lines it uses with a Benutzer-Login / SMS-TAN, full/restricted, step_up_fresh),
# ServiceClient (a client-credentials token: client_id, provider, scopes, has_scope(s)),
# Customer, Contract, Line, Invoice, VpnContract, Account, RegistrationTarget.
# Write each allow rule with the action as a literal in its head: the engine's rule
# index then skips every other action's rules (docs/polar.md, cost model).

# ---------------------------------------------------------------- actions (DOMAIN 2)
# kind: "read" | "change" (contractual/security change) | "protective" (a change a
# restricted session may make) | "critical" (X: needs a second factor within 10 min)
# | "business_station" (never here: My Business Station)
permission("view_usage", "read");
permission("view_tariff", "read");
permission("view_invoices", "read");
permission("download_invoice", "read");
permission("view_itemized_bill", "read");
permission("view_profile", "read");
permission("change_profile", "change");
permission("change_payment_method", "critical");
permission("change_tariff", "change");
permission("book_addon", "change");
permission("cancel_addon", "change");
permission("set_barring", "protective");
permission("lift_barring", "critical");
permission("block_sim", "protective");
permission("unblock_sim", "critical");
permission("order_sim_swap", "critical");
permission("view_puk", "critical");
permission("extend_contract", "change");
permission("cancel_contract", "critical");
permission("change_customer_password", "critical");
permission("manage_own_login", "protective");
permission("view_vpn", "business_station");
permission("change_vpn", "business_station");

# ------------------------------------------------------- relations (invariants 2, 3)
# Full reach: the customer numbers the account is bound to (holder / authorised person,
# Business Member, private part of a split contract). Own lines: the one line of a
# Benutzer-Login or SMS-TAN session. The private part of a split contract is billed to
# the private customer, the business part to the company: reach on one never reaches
# the other.
has_relation(user: User, line: Line) if user.holds_line(line);
has_relation(user: User, line: Line) if user.uses_line(line);
has_relation(user: User, contract: Contract) if user.holds_contract(contract);
has_relation(user: User, invoice: Invoice) if user.holds_invoice(invoice);
has_relation(user: User, customer: Customer) if user.holds_customer(customer);
has_relation(user: User, account: Account) if user.owns_account(account);
# Same answer for every VPN id, existing or not: a pointer to My Business Station
# (invariant 4: for everyone, service clients included).
has_relation(_user: User, _vpn: VpnContract);
has_relation(_client: ServiceClient, _vpn: VpnContract);

# A full session with full-contract reach (invariant 1: never a restricted session).
manages_line(user: User, line: Line) if user.full and user.holds_line(line);
manages_contract(user: User, contract: Contract) if user.full and user.holds_contract(contract);
manages_customer(user: User, customer: Customer) if user.full and user.holds_customer(customer);

# ------------------------------------------------------------- allow (DOMAIN 3, A)
# Read: everyone with full reach; usage and tariff also for the line's own user.
allow(user: User, "view_usage", line: Line) if user.holds_line(line);
allow(user: User, "view_usage", line: Line) if user.uses_line(line);
allow(user: User, "view_tariff", line: Line) if user.holds_line(line);
allow(user: User, "view_tariff", line: Line) if user.uses_line(line);
allow(user: User, "view_itemized_bill", line: Line) if user.holds_line(line);
allow(user: User, "view_invoices", contract: Contract) if user.holds_contract(contract);
allow(user: User, "view_invoices", invoice: Invoice) if user.holds_invoice(invoice);
allow(user: User, "download_invoice", invoice: Invoice) if user.holds_invoice(invoice);
allow(user: User, "view_profile", customer: Customer) if user.holds_customer(customer);

# Protective: any session related to the line, restricted ones included.
allow(user: User, "set_barring", line: Line) if user.holds_line(line);
allow(user: User, "set_barring", line: Line) if user.uses_line(line);
allow(user: User, "block_sim", line: Line) if user.holds_line(line);
allow(user: User, "block_sim", line: Line) if user.uses_line(line);
allow(user: User, "manage_own_login", account: Account) if user.owns_account(account);

# Contractual changes: full sessions with full reach.
allow(user: User, "change_profile", customer: Customer) if manages_customer(user, customer);
allow(user: User, "change_tariff", line: Line) if manages_line(user, line);
allow(user: User, "book_addon", line: Line) if manages_line(user, line);
allow(user: User, "cancel_addon", line: Line) if manages_line(user, line);
allow(user: User, "extend_contract", contract: Contract) if manages_contract(user, contract);

# Critical (X): what step_up/3 permits, once a second factor is fresh (invariant 5).
allow(user: User, "change_payment_method", customer: Customer) if
    user.step_up_fresh and step_up(user, "change_payment_method", customer);
allow(user: User, "change_customer_password", customer: Customer) if
    user.step_up_fresh and step_up(user, "change_customer_password", customer);
allow(user: User, "lift_barring", line: Line) if
    user.step_up_fresh and step_up(user, "lift_barring", line);
allow(user: User, "unblock_sim", line: Line) if
    user.step_up_fresh and step_up(user, "unblock_sim", line);
allow(user: User, "order_sim_swap", line: Line) if
    user.step_up_fresh and step_up(user, "order_sim_swap", line);
allow(user: User, "view_puk", line: Line) if
    user.step_up_fresh and step_up(user, "view_puk", line);
allow(user: User, "cancel_contract", contract: Contract) if
    user.step_up_fresh and step_up(user, "cancel_contract", contract);

# ------------------------------------------------------ step-up marks (DOMAIN 3, S)
# Allowed with a second factor in the last 10 minutes; without one the answer is a
# step-up challenge (401), not a 403.
step_up(user: User, "change_payment_method", customer: Customer) if manages_customer(user, customer);
step_up(user: User, "change_customer_password", customer: Customer) if manages_customer(user, customer);
step_up(user: User, "lift_barring", line: Line) if manages_line(user, line);
step_up(user: User, "unblock_sim", line: Line) if manages_line(user, line);
step_up(user: User, "order_sim_swap", line: Line) if manages_line(user, line);
step_up(user: User, "view_puk", line: Line) if manages_line(user, line);
step_up(user: User, "cancel_contract", contract: Contract) if manages_contract(user, contract);

# ---------------------------------------------- invoice parts of a contract (inv. 3)
# Which parts' invoices the backend may list for GET /api/contracts/{id}/invoices.
visible_part(user: User, contract: Contract, "private") if
    contract.is_split and user.holds_contract(contract);
visible_part(user: User, contract: Contract, "business") if
    contract.is_split and user.holds_customer_number(contract.framework_customer);

# ------------------------------------------------------ why a request was denied
# Queried only after a deny (the cheap permission/2 test before each method call keeps
# that query short); the gateway picks the most specific reason (order of
# gateway/policy/reasons.py). Reasons never name other people's data.
deny_reason(_caller, "view_vpn", _vpn: VpnContract, "vpn_in_business_station");
deny_reason(_caller, "change_vpn", _vpn: VpnContract, "vpn_in_business_station");
# Invariant 1: a restricted session never changes more than barrings, SIM block, own login.
deny_reason(user: User, action: String, _resource, "restricted_session") if
    permission(action, "change") and user.restricted;
deny_reason(user: User, action: String, _resource, "restricted_session") if
    permission(action, "critical") and user.restricted;
# A Benutzer-Login / SMS-TAN login sees only usage and tariff of its line.
deny_reason(user: User, _action: String, line: Line, "line_user_scope") if
    user.uses_line(line) and not user.holds_line(line);

# -------------------------------------------------- service clients (issue 5, 3.)
# A client-credentials token acts as a ServiceClient: no account, no binding, so no
# relation to any line, contract, invoice, customer or login. Denied by default: no
# allow rule names ServiceClient, so every action answers not_found (404, invariant 2:
# the same answer whether the thing exists or not) and the decision carries this
# reason (decision log, metrics, `policy explain`); VPN ids still get the pointer.
deny_reason(_client: ServiceClient, _action: String, _resource, "service_client_not_permitted");
#
# Granting a service client something is the security team's decision, one allow rule
# per (scope, action), the action literal in the head, reviewed like any other rule.
# Example (NOT active): a token with scope "portal:read" may read the tariff of any
# line. Uncomment, add decision-table cases to policies/tests/service_client.yaml,
# run `portal-gateway policy test`, ship.
# allow(client: ServiceClient, "view_tariff", _line: Line) if
#     client.has_scope("portal:read");

# ------------------------------------------------- registration (DOMAIN 1, table)
# can_register(target, proof_type, role, access_level): which account a proof creates.
# Holder or authorised person: the Kundenkennwort of a private or business customer,
# named by customer number or by one of its lines.
can_register(target: RegistrationTarget, "kundenkennwort", "customer", "full") if
    target.customer_kind = "private";
can_register(target: RegistrationTarget, "kundenkennwort", "customer", "full") if
    target.customer_kind = "business";
# Business Member: PUK of the line or the current invoice number.
can_register(target: RegistrationTarget, "puk", "business_member", "full") if
    target.is_line and target.contract_kind = "business_member";
can_register(target: RegistrationTarget, "invoice_number", "business_member", "full") if
    target.customer_kind = "business_member";
# Invoice split, private part: as Business Member, on the private line / customer.
can_register(target: RegistrationTarget, "puk", "split_private", "full") if
    target.is_line and target.part = "private";
can_register(target: RegistrationTarget, "invoice_number", "split_private", "full") if
    target.customer_kind = "split_private";
# Benutzer-Login: possession of the line (SMS-TAN), always restricted to that line.
can_register(target: RegistrationTarget, "sms_tan", "line_user", "restricted") if
    target.is_line;

# Why a registration is refused (only asked when no can_register rule matched).
# The company itself and its administrators: My Business Station, whatever the proof.
registration_refusal(target: RegistrationTarget, _proof: String, "company_in_business_station") if
    target.is_customer and target.customer_kind = "framework";
# Split business part and company phones: no full account, only a Benutzer-Login.
registration_refusal(target: RegistrationTarget, proof: String, "no_full_account") if
    target.is_line and target.part = "business" and proof != "sms_tan";
registration_refusal(target: RegistrationTarget, proof: String, "no_full_account") if
    target.is_line and target.contract_kind = "company" and proof != "sms_tan";

# Policy smoke test, run at every load: the rules above are consistent with the model.
?= permission("view_usage", "read");
