"""The static target: hosts that already exist (a partner site's), reached over SSH, perhaps
through a bastion; nothing is created or removed on them."""
