"""Snowflake: connection properties and account identifier normalisation (docs/warehouses.md).

Required ``account``, ``username``, ``privateKey``; optional ``passphrase``, ``defaultRole``,
``defaultWarehouse``, ``defaultDatabase``, ``defaultSchema``; ``privateKey`` and ``passphrase``
are sensitive (key-pair authentication, the only ``authType`` of a Snowflake DWH connection).

Account identifiers follow Snowflake's "Account identifiers" page
(docs.snowflake.com/en/user-guide/admin-account-identifier):

* preferred: the account name in its organisation, ``orgname-account_name`` (URLs, drivers),
  also written ``orgname.account_name`` (SQL);
* legacy: the account locator, alone (AWS US West, Oregon) or with its region and, for most
  regions, its cloud: ``locator.region`` / ``locator.region.cloud``.

The canonical form Stead stores and returns is the identifier as a driver's ``account``
parameter and the ``<account_identifier>.snowflakecomputing.com`` host take it: lower case,
without scheme, domain or trailing ``/``; the SQL form ``org.account`` written ``org-account``;
an account name written with ``-`` for ``_`` (the spelling Snowflake offers for URLs that cannot
hold ``_``, such as Okta's) written with ``_`` again, since account names hold no ``-``. A
locator form keeps its region and cloud exactly as given: which regions need the cloud segment
is Snowflake's table, not something to guess.

Private connectivity (AWS PrivateLink, Azure Private Link, Google Cloud Private Service Connect)
adds ``privatelink`` to the identifier in the account URL ("Connecting to your accounts",
docs.snowflake.com/en/user-guide/organizations-connect): ``orgname-account.privatelink`` or
``locator.region.privatelink``. Such an identifier is accepted and keeps its ``.privatelink``
segment, which is how the drivers' ``account`` parameter takes it. ``http://`` is refused:
Snowflake is reached over HTTPS only.

The address Snowsight shows in the browser is accepted too: ``https://app.snowflake.com/ORG/
ACCOUNT/...`` is ``org-account``, and the legacy ``https://app.snowflake.com/REGION/LOCATOR/...``
(a region such as ``us-east-2.aws``, ``eu-west-1`` or ``us-west-2``) is ``locator.region``, or
the locator alone for AWS US West (Oregon), whose locator carries no region. A Snowsight URL
without both segments is refused with a message saying what is missing.
"""

from __future__ import annotations

import re

from stead.warehouses import WarehouseSpec

ACCEPTED_FORMS = (
    "orgname-accountname, orgname.accountname, locator, locator.region or "
    "locator.region.cloud (cloud: aws, azure or gcp), each optionally with https://, "
    ".privatelink and .snowflakecomputing.com, or the Snowsight address "
    "https://app.snowflake.com/ORGANIZATION/ACCOUNT/"
)

_ORG = r"[a-z][a-z0-9]*"
# Account names: letters, digits and '_' (URLs may write '_' as '-'); not ending in '_' or '-'.
_ACCOUNT = r"[a-z](?:[a-z0-9_-]*[a-z0-9])?"
_LOCATOR = r"[a-z]+[0-9]+"
_REGION = r"[a-z]+(?:-[a-z0-9]+)+"

_ORG_ACCOUNT = re.compile(rf"(?P<org>{_ORG})[-.](?P<account>{_ACCOUNT})")
_LOCATOR_FORM = re.compile(rf"{_LOCATOR}(?:\.{_REGION}(?:\.(?:aws|azure|gcp))?)?")
_DOMAIN = ".snowflakecomputing.com"
_SNOWSIGHT = "app.snowflake.com"
# AWS US West (Oregon): a locator there is the whole identifier (no region segment).
_LOCATOR_ONLY_REGION = "us-west-2"
_PRIVATELINK = ".privatelink"
# Snowflake: the identifier, including organisation name and '-', should not exceed 63 characters.
_MAX_LENGTH = 63


def normalise_account(value: str) -> str:
    """Return the canonical account identifier for ``value`` (see the module docstring).

    Examples: ``https://AcmeOrg-Growth.snowflakecomputing.com/`` -> ``acmeorg-growth``;
    ``acmeorg.growth_eu`` and ``acmeorg-growth-eu`` -> ``acmeorg-growth_eu``;
    ``XY12345.eu-west-2.AWS`` -> ``xy12345.eu-west-2.aws``;
    ``AcmeOrg-Growth.privatelink.snowflakecomputing.com`` -> ``acmeorg-growth.privatelink``.

    Raises:
        ValueError: not one of the accepted forms (the message lists them), ``http://``, or an
            identifier longer than Snowflake allows.
    """
    lowered = value.lower()
    if lowered.startswith("http://"):
        raise ValueError(
            f"must not use http://: Snowflake is reached over HTTPS only; "
            f"accepted forms: {ACCEPTED_FORMS}"
        )
    text = lowered.removeprefix("https://")
    if text == _SNOWSIGHT or text.startswith(_SNOWSIGHT + "/"):
        return normalise_account(_from_snowsight(text))
    text = text.removesuffix("/").removesuffix(_DOMAIN)
    private = text.endswith(_PRIVATELINK)
    text = text.removesuffix(_PRIVATELINK)
    parts = text.split(".")
    # "a.b" is a locator with its region when "b" has a '-' (every region id does; account
    # names use '_'), else the SQL form "org.account".
    org_form = (len(parts) == 1 and "-" in text) or (len(parts) == 2 and "-" not in parts[1])
    if org_form and (match := _ORG_ACCOUNT.fullmatch(text)):
        canonical = f"{match['org']}-{match['account'].replace('-', '_')}"
    elif not org_form and _LOCATOR_FORM.fullmatch(text):
        canonical = text
    else:
        raise ValueError(f"is not a Snowflake account identifier; accepted forms: {ACCEPTED_FORMS}")
    if len(canonical.split(".")[0]) > _MAX_LENGTH:
        raise ValueError(f"is longer than the {_MAX_LENGTH} characters Snowflake allows")
    return canonical + _PRIVATELINK if private else canonical


def _from_snowsight(text: str) -> str:
    """The identifier a Snowsight address names (module docstring): ``text`` is the lower-case
    address without ``https://``.

    Raises:
        ValueError: the address lacks the organization and account (or region and locator).
    """
    path = text.removeprefix(_SNOWSIGHT).split("#", 1)[0].split("?", 1)[0]
    segments = [segment for segment in path.split("/") if segment]
    if len(segments) < 2:
        raise ValueError(
            "is a Snowsight address without its account: copy it from a page of the account, "
            "https://app.snowflake.com/ORGANIZATION/ACCOUNT/..., or give orgname-accountname"
        )
    first, second = segments[:2]
    if "-" in first or "." in first:
        # organization names hold only letters and digits; a region id always has a '-'
        return second if first == _LOCATOR_ONLY_REGION else f"{second}.{first}"
    return f"{first}-{second}"


SPEC = WarehouseSpec(
    name="SNOWFLAKE",
    auth_type="KEY_PAIR",
    required=("account", "username", "privateKey"),
    optional=("passphrase", "defaultRole", "defaultWarehouse", "defaultDatabase", "defaultSchema"),
    sensitive=frozenset({"privateKey", "passphrase"}),
    formats={
        "account": "the account identifier: " + ACCEPTED_FORMS + "; stored in canonical form",
        "privateKey": "an RSA private key of at least 2048 bits in PEM: PKCS#8, encrypted "
        "PKCS#8 or PKCS#1, LF or CRLF line ends",
        "passphrase": "text; required when the private key is encrypted",
    },
    normalisers={"account": normalise_account},
)
