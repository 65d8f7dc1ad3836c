.PHONY: demo test

# Set up a virtualenv, migrate the SQLite demo database and run the demo.
demo:
	./scripts/demo.sh

# Set up and run the whole test suite (lint, migrations check, SQLite, PostgreSQL, Django 5.2 + 6).
test:
	./scripts/test.sh
