"""The QA lead's records: accounts and roles, amendments, the audit trail, signatures.

`appliance.records.service.Records` is the one entry point the command line and the
app call; it checks the acting user's role before every action and writes each
action, allowed or refused, to the audit trail.
"""
