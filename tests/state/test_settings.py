"""Settings from the environment (lives here because settings mostly feed the state store)."""

from __future__ import annotations

import pytest

from shared.settings import Settings, SettingsError, load_settings
from shared.state import TableNames

REQUIRED = {
    "DUALSYNC_STORAGE__CONNECTION_STRING": "UseDevelopmentStorage=true",
    "DUALSYNC_ERP__TENANT_ID": "tenant-1",
    "DUALSYNC_ERP__CLIENT_ID": "bc-client",
    "DUALSYNC_ERP__CLIENT_SECRET": "bc-very-secret",
    "DUALSYNC_ERP__COMPANY_ID": "company-1",
    "DUALSYNC_CRM__BASE_URL": "https://org.crm.dynamics.com",
    "DUALSYNC_CRM__TENANT_ID": "tenant-1",
    "DUALSYNC_CRM__CLIENT_ID": "dv-client",
    "DUALSYNC_CRM__CLIENT_SECRET": "dv-very-secret",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.upper().startswith("DUALSYNC_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_and_parsing(env: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        env.setenv(name, value)
    env.setenv("DUALSYNC_CRM__INTEGRATION_USER_IDS", " u-1, u-2 ,")
    env.setenv("DUALSYNC_CRM__MAX_CONCURRENCY", "24")
    env.setenv("DUALSYNC_STORAGE__TABLE_PREFIX", "test1")

    settings = load_settings()

    assert settings.erp.max_concurrency == 5 and settings.crm.max_concurrency == 24
    assert settings.crm.integration_user_ids == ["u-1", "u-2"]
    assert settings.crm.effective_scope == "https://org.crm.dynamics.com/.default"
    assert TableNames.from_settings(settings.storage).couplings == "test1couplings"
    assert sorted(s.get_secret_value() for s in settings.secrets()) == sorted(
        ["UseDevelopmentStorage=true", "bc-very-secret", "dv-very-secret"])
    assert "bc-very-secret" not in repr(settings)


def test_every_problem_is_named_by_its_variable_without_values(env: pytest.MonkeyPatch) -> None:
    env.setenv("DUALSYNC_ERP__CLIENT_SECRET", "bc-very-secret")
    env.setenv("DUALSYNC_ERP__MAX_CONCURRENCY", "50")
    env.setenv("DUALSYNC_CRM__BATCH_SIZE", "not-a-number-bc-very-secret")
    env.setenv("DUALSYNC_STORAGE__TABLE_PREFIX", "9bad")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    names = {var for var, _ in caught.value.problems}
    assert names == {"DUALSYNC_STORAGE__CONNECTION_STRING", "DUALSYNC_STORAGE__TABLE_PREFIX",
                     "DUALSYNC_ERP__TENANT_ID", "DUALSYNC_ERP__CLIENT_ID", "DUALSYNC_ERP__COMPANY_ID",
                     "DUALSYNC_ERP__MAX_CONCURRENCY", "DUALSYNC_CRM__BASE_URL", "DUALSYNC_CRM__TENANT_ID",
                     "DUALSYNC_CRM__CLIENT_ID", "DUALSYNC_CRM__BATCH_SIZE"}
    assert "bc-very-secret" not in str(caught.value)
    assert "ACCOUNT_URL" in str(caught.value)


def test_whole_group_missing_lists_each_required_variable(env: pytest.MonkeyPatch) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "DUALSYNC_ERP__COMPANY_ID: missing" in str(caught.value)
    assert "DUALSYNC_CRM__BASE_URL: missing" in str(caught.value)


def test_account_url_replaces_the_connection_string(env: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        env.setenv(name, value)
    env.delenv("DUALSYNC_STORAGE__CONNECTION_STRING")
    env.setenv("DUALSYNC_STORAGE__ACCOUNT_URL", "https://acct.table.core.windows.net")
    assert isinstance(load_settings(), Settings)


def test_finance_operations_needs_its_environment_url_not_a_company(env: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        if name != "DUALSYNC_ERP__COMPANY_ID":
            env.setenv(name, value)
    env.setenv("DUALSYNC_ERP__KIND", "finance_operations")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [var for var, _ in caught.value.problems] == ["DUALSYNC_ERP__BASE_URL"]
    env.setenv("DUALSYNC_ERP__BASE_URL", "https://contoso.operations.dynamics.com/")
    env.setenv("DUALSYNC_ERP__MAX_CONCURRENCY", "20")  # more than BC's 5 is fine for F&O
    erp = load_settings().erp
    assert erp.effective_scope == "https://contoso.operations.dynamics.com/.default"
    assert erp.max_concurrency == 20
