"""The README is the operator's reference: it must name every setting."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_readme_documents_every_setting():
    missing = [f"MINYI_{name.upper()}" for name in Settings.model_fields if f"MINYI_{name.upper()}" not in README]
    assert missing == []


def test_readme_opens_with_the_two_commands():
    opening = README.split("\n## ", 1)[0]
    assert "make run" in opening and "make test" in opening


INTEGRATION = (Path(__file__).resolve().parent.parent / "docs" / "integration.md").read_text(encoding="utf-8")
# The modules behind the integration endpoints: every error code they can answer is in the guide's table.
INTEGRATION_MODULES = [
    "app/services/residents.py", "app/services/content_check.py", "app/services/photos.py",
    "app/services/api_clients.py", "app/services/webhooks.py", "app/services/changes.py",
    "app/api/v1/wechat.py", "app/api/v1/photos.py", "app/api/v1/webhooks.py", "app/api/v1/changes.py",
    "app/api/v1/api_clients.py", "app/api/v1/forms.py", "app/services/idempotency.py",
]


def test_the_integration_guide_names_every_error_code_an_integrator_can_get():
    import re

    root = Path(__file__).resolve().parent.parent
    codes = {code for module in INTEGRATION_MODULES
             for code in re.findall(r'code="([a-z_]+)"', (root / module).read_text(encoding="utf-8"))}
    assert codes  # the pattern still finds them
    assert sorted(code for code in codes if f"`{code}`" not in INTEGRATION) == []


def test_the_integration_guide_covers_every_contract_path_for_integrators():
    import re

    contract = (Path(__file__).resolve().parent.parent.parent / "shared" / "CONTRACT.md")
    if not contract.exists():  # the contract lives beside the project; CI checks it out there too
        contract_text = ""
    else:
        contract_text = contract.read_text(encoding="utf-8").split("## WeChat and integrators", 1)[1].split("\n## ", 1)[0]
    paths = set(re.findall(r"`(?:[A-Z]+ )?(/api/v1/[a-z0-9/{}_-]+)", contract_text))
    paths |= {"/api/v1/wechat/login", "/api/v1/me/forms", "/api/v1/me/subscriptions", "/api/v1/api-clients",
              "/api/v1/webhooks", "/api/v1/changes"}
    assert sorted(path for path in paths if path not in INTEGRATION) == []


ROOT = Path(__file__).resolve().parent.parent


def test_the_testing_guide_and_make_test_agree():
    """`make test` runs on every core and lists the ten slowest tests; the guide names the switches the
    suite reads (the deep variant, the shuffled order) and the time budget."""
    guide = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    support = (ROOT / "tests" / "support" / "__init__.py").read_text(encoding="utf-8")
    recipe = makefile.split("\ntest: install\n", 1)[1].split("\n\n", 1)[0]
    assert "--durations=10" in recipe and "-n $(WORKERS)" in recipe
    assert "MINYI_TEST_DEEP" in support and "MINYI_TEST_DEEP=1 make test" in guide
    assert "--random-order-seed" in guide and "15 minutes" in guide
    assert "docs/testing.md" in README
