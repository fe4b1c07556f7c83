"""Bishop's event contracts: the only code the services share."""
