"""Neutron's dns-integration without an external DNS service (neutron-lib's
``api/validators/dns.py``, ML2's ``DNSExtensionDriver``) and extra_dhcp_opt's rules
(``extradhcpopt_db``).

- a port's ``dns_name`` is recorded only when the configured ``dns_domain`` is not Neutron's
  default ``openstacklocal.`` (Neutron ignores it then); ``dns_assignment`` gives per fixed
  IP the hostname (the dns_name, else ``host-<ip dashed>``) and its FQDN in that domain;
- networks' ``dns_domain`` and floating IPs' ``dns_name``/``dns_domain`` are kept as given
  (they are for an external DNS service, which floatip has not).
The checks raise ValueError(reason); ``api.schemas`` answers it as Neutron's validators do.
"""
from __future__ import annotations

import re


# ``[DEFAULT] dns_domain`` of ``floatip serve``'s config file (Neutron's option and default)
DNS_DOMAIN = "openstacklocal"
DNS_DOMAIN_DEFAULT = "openstacklocal."
FQDN_MAX = 255
_LABEL = re.compile(r"^([a-z0-9-]{1,63}|<project_id>|<project_name>|<user_name>|<user_id>)$")
VALID_BLANK_OPTS = ("router", "classless-static-route")
OPT_NAME_MAX, OPT_VALUE_MAX = 64, 255
CLIENT_ID = ("client-id", "61")


def domain() -> str:
    """The configured domain, ending in a dot ('' for none)."""
    d = (DNS_DOMAIN or "").strip()
    return d if not d or d.endswith(".") else d + "."


def configured(text: str) -> str:
    """``[DEFAULT] dns_domain`` checked (ValueError: why not)."""
    text = text.strip().lower()
    why = _format(text)
    if why:
        raise ValueError(f"[DEFAULT] dns_domain = {text!r}: {why}")
    return text


def names_recorded() -> bool:
    return domain() not in ("", DNS_DOMAIN_DEFAULT)


def _format(data: str, max_len: int = FQDN_MAX) -> str | None:
    """Why ``data`` is not a PQDN or FQDN (RFC 1123), or None."""
    if not data:
        return None
    trimmed = data[:-1] if data.endswith(".") else data
    why = None
    if len(trimmed) > max_len:
        why = f"'{trimmed}' exceeds the {max_len} character FQDN limit"
    else:
        labels = trimmed.split(".")
        for label in labels:
            if not label:
                why = "Encountered an empty component"
            elif label.startswith("-") or label.endswith("-"):
                why = f"Name '{label}' must not start or end with a hyphen"
            elif not _LABEL.match(label):
                why = (f"Name '{label}' must be 1-63 characters long, each of which can only "
                       "be alphanumeric or a hyphen")
            if why:
                break
        if why is None and len(labels) > 1 and re.match("^[0-9]+$", labels[-1]):
            why = f"TLD '{labels[-1]}' must not be all numeric"
    return f"'{data}' not a valid PQDN or FQDN. Reason: {why}" if why else None


def _text(v) -> str:
    if not isinstance(v, str):
        raise ValueError(f"'{v}' is not a valid string")
    return v.lower()  # convert_string_to_case_insensitive


def port_dns_name(v) -> str:
    """validate_dns_name; the name to record ('' while the domain is Neutron's default)."""
    v = _text("" if v is None else v)
    why = _format(v)
    dom = domain()
    if why is None and v and names_recorded():
        higher = f".{dom}"
        if not v.endswith("."):
            if len(v) + len(higher) > FQDN_MAX:
                why = (f"The dns_name passed is a PQDN and its size is '{len(v)}'. The "
                       f"dns_domain option in neutron.conf is set to {DNS_DOMAIN}, with a "
                       f"length of '{len(higher)}'. When the two are concatenated to form a "
                       "FQDN (with a '.' at the end), the resulting length exceeds the maximum "
                       f"size of '{FQDN_MAX}'")
        elif len(v) <= len(higher) or not v.endswith(higher):
            why = ("The dns_name passed is a FQDN. Its higher level labels must be equal to "
                   f"the dns_domain option in neutron.conf, that has been set to "
                   f"'{DNS_DOMAIN}'. It must also include one or more valid DNS labels to the "
                   f"left of '{DNS_DOMAIN}'")
    if why:
        raise ValueError(why)
    return v if names_recorded() else ""


def dns_domain(v) -> str:
    """validate_dns_domain (networks' and floating IPs' dns_domain)."""
    v = _text("" if v is None else v)
    if not v:
        return v
    why = f"'{v}' is not a FQDN" if not v.endswith(".") else _format(v)
    if why is None and len(v) > FQDN_MAX - 2:
        why = (f"'{v}' contains {len(v)} characters. Adding a sub-domain will cause it to "
               f"exceed the maximum length of a FQDN of '{FQDN_MAX}'")
    if why:
        raise ValueError(why)
    return v


def port_dns_domain(v) -> str:
    """dns-domain-ports: a domain as networks' (validate_dns_domain), recorded with the port's
    dns_name only (Neutron keeps both in one record, made when names are recorded)."""
    v = dns_domain(v)
    return v if names_recorded() else ""


def fip_dns_name(v) -> str:
    """validate_fip_dns_name: a relative name."""
    v = _text("" if v is None else v)
    if not v:
        return v
    why = f"'{v}' is a FQDN. It should be a relative domain name" if v.endswith(".") \
        else _format(v)
    if why is None and len(v) > FQDN_MAX - 3:
        why = (f"'{v}' contains {len(v)} characters. Adding a domain name will cause it to "
               f"exceed the maximum length of a FQDN of '{FQDN_MAX}'")
    if why:
        raise ValueError(why)
    return v


def check_fip_pair(name: str, dom: str) -> str | None:
    """_validate_floatingip_dns: both or neither (why not, or None)."""
    if dom and not name:
        return "dns_domain cannot be specified without a dns_name"
    if name and not dom:
        return "dns_name cannot be specified without a dns_domain"
    return None


def assignment(dns_name: str, ips: list[str]) -> list[dict]:
    """_get_dns_names_for_port: per fixed IP its hostname and FQDN."""
    dom = domain()
    name = dns_name if names_recorded() else ""
    out = []
    for ip in ips:
        if name:
            host = name
            fqdn = name if name.endswith(".") else f"{name}.{dom}"
        else:
            host = "host-" + ip.replace(".", "-").replace(":", "-")
            fqdn = f"{host}.{dom}" if dom else host
        out.append({"ip_address": ip, "hostname": host, "fqdn": fqdn})
    return out


# ---------------------------------------------------------------------------------------
# extra_dhcp_opt

def _key_spec_error(opt) -> bool:
    """Does ``opt`` match neither of neutron-lib's EXTRA_DHCP_OPT_KEY_SPECS?"""
    if not isinstance(opt, dict) or not {"opt_name", "opt_value"} <= set(opt) or \
            set(opt) - {"opt_name", "opt_value", "ip_version"}:
        return True
    name, value = opt["opt_name"], opt["opt_value"]
    if "ip_version" in opt:
        try:
            ver = int(opt["ip_version"])
        except (TypeError, ValueError):
            return True
        if isinstance(opt["ip_version"], bool) or ver not in (4, 6):
            return True
        opt["ip_version"] = ver

    def oneline(x, n):
        return isinstance(x, str) and x.strip() != "" and len(x) <= n and \
            len(x.splitlines()) <= 1 and "\x00" not in x
    if name in VALID_BLANK_OPTS:
        return not (value is None or (isinstance(value, str) and len(value) <= OPT_VALUE_MAX
                                      and "\n" not in value and "\x00" not in value))
    return not (oneline(name, OPT_NAME_MAX) and (value is None or oneline(value, OPT_VALUE_MAX)))


def check_opts(v) -> list[dict]:
    """validate_list_of_any_key_specs_or_none; the options as given (ip_version an int)."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise ValueError(f"'{v}' is not a list")
    v = [dict(o) if isinstance(o, dict) else o for o in v]
    for o in v:
        if _key_spec_error(o):
            raise ValueError(f"No valid key specs matched for: {o}")
    return v


def _kept(name: str, value) -> bool:
    """_is_valid_opt_value: blank-able options keep '', others need a value."""
    return value is not None if name in VALID_BLANK_OPTS else bool(value)


def merge_opts(have: list[dict], wanted: list[dict]) -> list[dict]:
    """_update_extra_dhcp_opts_on_port (creation: ``have`` empty): an entry matches by
    (opt_name, ip_version); a null value removes it, a new value replaces it."""
    out = [dict(o) for o in have]
    for w in wanted:
        ver = w.get("ip_version", 4)
        match = next((o for o in out if o["opt_name"] == w["opt_name"]
                      and o["ip_version"] == ver), None)
        if match is not None:
            if w["opt_value"] is None:
                out.remove(match)
            elif _kept(w["opt_name"], w["opt_value"]):
                match["opt_value"] = w["opt_value"]
        elif _kept(w["opt_name"], w["opt_value"]):
            out.append({"opt_name": w["opt_name"], "opt_value": w["opt_value"],
                        "ip_version": ver})
    return out
