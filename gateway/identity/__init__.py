"""Identity: users and their credentials (schema ``identity``)."""
