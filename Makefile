# `make run`: set up and serve the demo town on SQLite at http://127.0.0.1:8000
# `make test`: set up and run every test (PostgreSQL tests skip, saying why, if no server answers), on every
#   core, then list the ten slowest. `make test PYTEST_ARGS="tests/test_workflow.py -k sqlite"` narrows it;
#   `MINYI_TEST_DEEP=1 make test` runs the deep variant (docs/testing.md).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := frontend/node_modules/.installed

.PHONY: install run test migrate demo clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

# htmx (pinned in frontend/package-lock.json) is served from our own static path; never committed.
$(NODE_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

# The demo offers 短信通知 with the log provider (texts written to the server's log, nothing sent) unless
# MINYI_SMS_PROVIDER says otherwise; unset elsewhere, no SMS is offered (docs/sms.md).
run: install
	MINYI_SMS_PROVIDER=$${MINYI_SMS_PROVIDER-log} $(BIN)/minyi serve --demo

# Workers: one per core (`make test WORKERS=0` runs in this process).
WORKERS ?= auto
PYTEST_ARGS ?=

test: install
	$(BIN)/pytest -n $(WORKERS) --dist worksteal --durations=10 $(PYTEST_ARGS)

migrate: install
	$(BIN)/minyi migrate

demo: install
	$(BIN)/minyi demo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
