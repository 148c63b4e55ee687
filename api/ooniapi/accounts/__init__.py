"""User accounts: e-mail login links, sessions and roles, the accounts store,
the mailer, the operator command that makes the first admin, and the
quotas summary."""
