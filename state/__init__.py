"""The SQLite paper ledger: schema, migrations, writer and readers."""
