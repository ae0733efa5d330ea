"""Authorization: Polar policies (oso, behind `engine.py`) over directory facts.

Public surface: `Authorizer` (authorize / can_register / reload / ready / watch / explain),
`Decision`, `reasons.message`, `registration.resolve_registration_target` and the
`RegistrationTarget` / `RegistrationVerdict` values, `cli.register` for the
``portal-gateway policy ...`` commands. Knows no HTTP.
"""

from gateway.policy.authorizer import Authorizer
from gateway.policy.decision import Decision
from gateway.policy.engine import PolicyLoadError
from gateway.policy.reasons import message
from gateway.policy.registration import (
    RegistrationTarget,
    RegistrationVerdict,
    resolve_registration_target,
)

__all__ = [
    "Authorizer",
    "Decision",
    "PolicyLoadError",
    "RegistrationTarget",
    "RegistrationVerdict",
    "message",
    "resolve_registration_target",
]
