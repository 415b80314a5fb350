"""Channel's limits for command definitions, checked before ``registerCommands``.

From the protocol notes (``alfDescription`` <= 1500 characters, <= 10 params,
types string/float/int/bool) and from Channel's app-store command model
(``channel-io/ch-app-store``): command name ``^[a-zA-Z]{1,20}$``, scope
``desk``/``front``, description <= 100 characters, i18n names without spaces
or underscores, param names ``^[a-zA-Z_-]{1,20}$``, param descriptions <= 50.
An older app-store version capped ``alfDescription`` at 500 characters;
:data:`LEGACY_MAX_ALF_DESCRIPTION` lets tests keep ours under that too.
"""

from __future__ import annotations

import re
from typing import Any

MAX_ALF_DESCRIPTION = 1500
LEGACY_MAX_ALF_DESCRIPTION = 500
MAX_PARAMS = 10
MAX_DESCRIPTION = 100
MAX_PARAM_DESCRIPTION = 50
PARAM_TYPES = ("string", "float", "int", "bool")
SCOPES = ("desk", "front")
ALF_MODES = ("disable", "recommend")
_NAME = re.compile(r"^[a-zA-Z]{1,20}$")
_I18N_NAME = re.compile(r"^[^\s_]{1,20}$")
_PARAM_NAME = re.compile(r"^[a-zA-Z_-]{1,20}$")


def definition_problems(definitions: list[dict[str, Any]]) -> list[str]:
    """Every way ``definitions`` break Channel's limits (empty when valid)."""
    problems: list[str] = []
    for cmd in definitions:
        name = str(cmd.get("name", ""))
        params = cmd.get("paramDefinitions", [])
        checks = [
            (_NAME.match(name), "name must match ^[a-zA-Z]{1,20}$"),
            (cmd.get("scope") in SCOPES, "scope must be desk or front"),
            (cmd.get("alfMode") in ALF_MODES, "alfMode must be disable or recommend"),
            (len(cmd.get("description", "")) <= MAX_DESCRIPTION, "description too long"),
            (len(cmd.get("alfDescription", "")) <= MAX_ALF_DESCRIPTION, "alfDescription too long"),
            (len(params) <= MAX_PARAMS, f"more than {MAX_PARAMS} params"),
            (bool(cmd.get("actionFunctionName")), "actionFunctionName missing"),
        ]
        for lang, i18n in cmd.get("nameDescI18nMap", {}).items():
            checks.append((_I18N_NAME.match(i18n.get("name", "")), f"{lang} name: 1-20 chars, no spaces"))
            checks.append((len(i18n.get("description", "")) <= MAX_DESCRIPTION, f"{lang} description too long"))
        names = [param.get("name", "") for param in params]
        checks.append((len(names) == len(set(names)), "duplicate param names"))
        for param in params:
            pname = param.get("name", "")
            checks += [
                (_PARAM_NAME.match(pname), f"param {pname!r}: bad name"),
                (param.get("type") in PARAM_TYPES, f"param {pname}: bad type"),
                (isinstance(param.get("required"), bool), f"param {pname}: required must be a bool"),
                (len(param.get("description", "")) <= MAX_PARAM_DESCRIPTION, f"param {pname}: description too long"),
                (len(param.get("alfDescription", "")) <= MAX_ALF_DESCRIPTION, f"param {pname}: alfDescription too long"),
            ]
        problems.extend(f"{name}: {message}" for ok, message in checks if not ok)
    return problems
