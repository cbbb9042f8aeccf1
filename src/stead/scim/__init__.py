"""SCIM 2.0 user and group provisioning at ``/scim/v2`` (RFC 7643, RFC 7644; docs/scim.md)."""
