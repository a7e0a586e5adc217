"""Connection and tuning settings, read from the environment (Function App settings / Key Vault references).

Every variable starts with `DUALSYNC_`; groups are nested with `__` (the separator Azure app settings use on
Linux), e.g. `DUALSYNC_ERP__CLIENT_ID`. `load_settings()` validates everything at once and raises one
`SettingsError` naming every missing or invalid variable — never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DUALSYNC_"
NESTED = "__"
# Table names: 3-63 letters or digits starting with a letter; prefix ≤ 40 + part ≤ 23 always fits.
_TABLE_PART = r"^[A-Za-z0-9]{2,23}$"

IdList = Annotated[list[str], NoDecode]  # comma-separated in the environment


def _split_ids(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


G = TypeVar("G", bound=_Group)


class StorageSettings(_Group):
    """Azure Table storage holding couplings, watermarks, jobs, errors and subscriptions."""

    account_url: str | None = Field(
        None, description="Table endpoint, e.g. `https://<account>.table.core.windows.net`, used with the "
                          "managed identity when no connection string is set.")
    connection_string: SecretStr | None = Field(
        None, validate_default=True,
        description="Storage connection string (Azurite: `UseDevelopmentStorage=true` or the devstoreaccount1 "
                    "string). Either this or ACCOUNT_URL.")
    table_prefix: str = Field("dualsync", pattern=r"^[A-Za-z][A-Za-z0-9]{0,39}$",
                              description="Prefix of every table name: a letter, then up to 39 letters or digits.")
    couplings_table: str = Field("couplings", pattern=_TABLE_PART, description="Couplings table (after the prefix).")
    watermarks_table: str = Field("watermarks", pattern=_TABLE_PART, description="Watermarks table (after the prefix).")
    jobs_table: str = Field("jobs", pattern=_TABLE_PART, description="Jobs table (after the prefix).")
    errors_table: str = Field("errors", pattern=_TABLE_PART, description="Errors table (after the prefix).")
    subscriptions_table: str = Field("subscriptions", pattern=_TABLE_PART,
                                     description="Webhook subscriptions table (after the prefix).")
    partition_entities_per_s: float = Field(
        1500.0, ge=0, description="Entities per second the bulk state writes and reads of a full sync put on one "
        "Table partition (one mapping's couplings), from one process; Azure Table storage's target is 2 000 per "
        "partition. 0 turns the cap off (Azurite, benchmarks).")
    conflicts_table: str = Field("conflicts", pattern=_TABLE_PART,
                                 description="Settled conflicts an operator can list and reverse (after the prefix).")

    @field_validator("connection_string")
    @classmethod
    def _connection_or_url(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if (value is None or not value.get_secret_value()) and not info.data.get("account_url"):
            raise ValueError(f"missing (or set {ENV_PREFIX}STORAGE{NESTED}ACCOUNT_URL)")
        return value

    def table_names(self) -> dict[str, str]:
        """Logical table → actual table name."""
        return {name: self.table_prefix + getattr(self, f"{name}_table")
                for name in ("couplings", "watermarks", "jobs", "errors", "subscriptions", "conflicts")}


class _ServiceSettings(_Group):
    tenant_id: str = Field(description="Entra ID tenant (directory) id.")
    authority: str = Field("https://login.microsoftonline.com",
                           description="Token authority; the emulators serve one at their own base URL.")
    client_id: str = Field(description="App registration (or user-assigned managed identity) client id.")
    client_secret: SecretStr | None = Field(
        None, description="Client secret; leave unset to use the Function App's managed identity.")
    integration_user_ids: IdList = Field(
        default_factory=list, description="Comma-separated ids of the user(s) our writes appear as; their "
                                          "changes are echoes and are dropped early.")
    max_concurrency: int = Field(ge=1, description="Requests in flight at once against this service.")
    batch_size: int = Field(ge=1, description="Operations per $batch request.")
    page_size: int = Field(ge=1, description="Records per page asked with `Prefer: odata.maxpagesize`.")

    _split = field_validator("integration_user_ids", mode="before")(_split_ids)


BC_BASE_URL = "https://api.businesscentral.dynamics.com/v2.0"
BC_SCOPE = "https://api.businesscentral.dynamics.com/.default"


class ErpSettings(_ServiceSettings):
    """The ERP side: Business Central API v2.0, or Finance and Operations OData (`KIND=finance_operations`)."""

    kind: Literal["business_central", "finance_operations"] = Field(
        "business_central", description="ERP system: `business_central` or `finance_operations`.")
    base_url: str | None = Field(
        None, description="Business Central: API root before `/{tenant}/{environment}/api/v2.0` (default "
                          f"`{BC_BASE_URL}`). Finance and Operations: the environment URL, e.g. "
                          "`https://<env>.operations.dynamics.com` (required).")
    environment: str = Field("production", description="Business Central environment name.")
    company_id: str | None = Field(None, description="Business Central: company id (GUID) whose records are "
                                                     "synced (this or COMPANY_IDS is required).")
    company_ids: IdList = Field(
        default_factory=list, description="Business Central: comma-separated ids of several companies synced into "
                                          "one Dataverse environment; the pack's `companies` declaration stripes "
                                          "records by `companyId`, and record ids become `<company>/<record>`.")
    scope: str | None = Field(None, description=f"OAuth2 scope; default `{BC_SCOPE}` (Business Central) or "
                                                "`<BASE_URL>/.default` (Finance and Operations).")
    max_concurrency: int = Field(5, ge=1, le=52, description="Hard cap on concurrent requests (BC processes 5 per "
                                                             "user; at most 5 for BC).")
    initial_concurrency: int | None = Field(
        None, ge=1, le=52, description="Concurrent requests to start with; one more after a run of clean answers, "
                                       "half on a 429 or 503, never above MAX_CONCURRENCY. Unset: MAX_CONCURRENCY.")
    requests_per_window: int | None = Field(
        None, ge=0, description="Requests per user and 5-minute sliding window we send before waiting (BC refuses "
                                "beyond 6 000). Unset: 5400 for BC, no guard for F&O; 0 turns the guard off.")
    batch_size: int = Field(100, ge=1, le=1000, description="Operations per $batch (BC maximum 100).")
    page_size: int = Field(1000, ge=1, le=20000, description="Page size (BC maximum 20 000, F&O 10 000).")

    _split_companies = field_validator("company_ids", mode="before")(_split_ids)

    @model_validator(mode="wrap")
    @classmethod
    def _per_kind(cls, data: Any, handler: Any) -> ErpSettings:
        """Rules that depend on the kind, reported together with every other problem of the group (an after-
        validator would only run once the rest is valid, hiding these)."""
        problems = _kind_problems(data) if isinstance(data, dict) else []
        try:
            result = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            details = [{"type": e["type"], "loc": e["loc"], "input": e.get("input"), "ctx": e.get("ctx", {})}
                       for e in exc.errors()]
            raise ValidationError.from_exception_data(cls.__name__, [*details, *problems]) from None
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, problems)
        return result

    @property
    def api_base_url(self) -> str:
        return (self.base_url or BC_BASE_URL).rstrip("/")

    @property
    def effective_scope(self) -> str:
        if self.scope:
            return self.scope
        return BC_SCOPE if self.kind == "business_central" else self.api_base_url + "/.default"


def _kind_problems(data: dict[str, Any]) -> list[Any]:
    kind = str(data.get("kind") or "business_central")
    found: list[tuple[str, str]] = []

    def number(name: str) -> int | None:
        try:
            return int(data[name]) if data.get(name) not in (None, "") else None
        except (TypeError, ValueError):
            return None  # the field's own validation reports it

    if kind == "business_central":
        if not data.get("company_id") and not data.get("company_ids"):
            found.append(("company_id", "missing (required for Business Central, or COMPANY_IDS)"))
        if (n := number("max_concurrency")) is not None and n > 5:
            found.append(("max_concurrency", "Business Central processes at most 5 requests per user"))
        if (n := number("batch_size")) is not None and n > 100:
            found.append(("batch_size", "Business Central takes at most 100 operations per $batch"))
    elif kind == "finance_operations":
        if not data.get("base_url"):
            found.append(("base_url", "missing (the environment URL, required for Finance and Operations)"))
        if (n := number("page_size")) is not None and n > 10000:
            found.append(("page_size", "Finance and Operations pages at most 10 000 records"))
    return [{"type": "value_error", "loc": (name,), "input": data.get(name), "ctx": {"error": ValueError(why)}}
            for name, why in found]


class CrmSettings(_ServiceSettings):
    """The CRM side: the Dataverse Web API."""

    base_url: str = Field(description="Environment URL, e.g. `https://<org>.crm.dynamics.com`.")
    api_path: str = Field("/api/data/v9.2", description="Web API path below the environment URL.")
    scope: str | None = Field(None, description="OAuth2 scope; default `<BASE_URL>/.default`.")
    max_concurrency: int = Field(52, ge=1, le=52, description="Hard cap on concurrent requests (service limit 52 "
                                                              "per user).")
    initial_concurrency: int = Field(
        4, ge=1, le=52, description="Concurrent requests to start with until Dataverse's `x-ms-dop-hint` (its "
                                    "recommended parallelism) arrives; then one more after a run of clean answers, "
                                    "half on a 429 or 503, never above MAX_CONCURRENCY.")
    requests_per_window: int = Field(
        5400, ge=0, description="Requests per user and 5-minute sliding window we send before waiting (Dataverse "
                                "refuses beyond 6 000); 0 turns the guard off.")
    execution_budget_s: float = Field(
        1080.0, ge=0, description="Seconds of request time per user and 5-minute window before waiting (Dataverse "
                                  "refuses beyond 1 200 s of execution time), measured as our wall-clock time per "
                                  "request, which overestimates it; 0 turns the guard off.")
    batch_size: int = Field(100, ge=1, le=1000, description="Requests per multipart $batch (maximum 1000).")
    bulk_size: int = Field(500, ge=0, description="Records per bulk message (CreateMultiple / UpdateMultiple / "
                                                  "UpsertMultiple); 0 sends every batched write through $batch.")
    page_size: int = Field(5000, ge=1, le=5000, description="Page size (maximum 5000).")

    @property
    def effective_scope(self) -> str:
        return self.scope or self.base_url.rstrip("/") + "/.default"


class RetrySettings(_Group):
    """The retry budget of every HTTP call (see shared.http.retry.RetryPolicy)."""

    max_attempts: int = Field(6, ge=1, description="Tries per request, the first included.")
    max_elapsed_s: float = Field(120.0, gt=0, description="Seconds from the first try after which we give up.")
    base_delay_s: float = Field(0.5, ge=0, description="First back-off step (full jitter, doubling).")
    max_delay_s: float = Field(30.0, ge=0, description="Longest single back-off.")
    rate_limit_base_s: float = Field(2.0, ge=0, description="First back-off after a 429 without Retry-After.")


class QueueSettings(_Group):
    """The Service Bus queue between the webhooks and the processor (session-enabled, duplicate detection on)."""

    name: str = Field("dualsync-changes", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,259}$",
                      description="Queue name; the processor's trigger reads the same app setting "
                                  "(`%DUALSYNC_QUEUE__NAME%`).")
    namespace: str | None = Field(
        None, description="Fully qualified namespace, e.g. `<name>.servicebus.windows.net`, used with the managed "
                          "identity when no connection string is set.")
    connection_string: SecretStr | None = Field(
        None, description="Service Bus connection string (local tools only; Azure uses NAMESPACE + identity).")
    max_attempts: int = Field(6, ge=1, le=50, description="Sync attempts per notice before a transiently failing "
                                                          "message is given up (dead-lettered).")
    retry_base_s: float = Field(30.0, ge=0, description="First back-off before a transiently failed record is "
                                                       "tried again (doubling, with jitter).")
    retry_max_s: float = Field(1800.0, ge=0, description="Longest back-off between two attempts.")
    stale_reservation_s: float = Field(
        300.0, ge=1, le=86400,
        description="A create's reservation older than this was left by a worker that died (a host restart, a "
                    "crash): the next attempt takes it over, first looking for a record the dead worker made.")
    job_flush_s: float = Field(
        5.0, ge=0, le=300,
        description="Live changes count into one job row per mapping, direction and hour; the counts are kept "
                    "in memory this long before they are written (0: at once, one Table write per change).")


class WebhookSettings(_Group):
    """Shared secrets that authenticate incoming webhooks (compared in constant time, never logged)."""

    bc_client_state: SecretStr | None = Field(
        None, description="The `clientState` given to Business Central subscriptions; every notification must "
                          "echo it. Unset: Business Central notifications are refused (503).")
    dataverse_key: SecretStr | None = Field(
        None, description="The secret of the Dataverse service endpoint, sent where DATAVERSE_AUTH says. "
                          "Unset: Dataverse notifications are refused (503).")
    dataverse_auth: Literal["header", "code", "query"] = Field(
        "header", description="Where the Dataverse service endpoint sends DATAVERSE_KEY, as its authentication "
                              "type says: `header` (HttpHeader, the header DATAVERSE_HEADER), `code` (WebhookKey, "
                              "`?code=`) or `query` (HttpQueryString, `?<DATAVERSE_PARAM>=`). The key is accepted "
                              "there only.")
    dataverse_header: str = Field("x-api-key", min_length=1,
                                  description="Header name of the HttpHeader authentication.")
    dataverse_param: str = Field("key", min_length=1,
                                 description="Query parameter of the HttpQueryString authentication.")
    fo_key: SecretStr | None = Field(
        None, description="The secret of the Finance and Operations data-event endpoint, sent as `?code=` in the "
                          "endpoint URL or as the header FO_HEADER. Unset: F&O data events are refused (503).")
    fo_header: str = Field("x-api-key", min_length=1,
                           description="Header name that may carry FO_KEY.")
    # 512 KiB: a Dataverse context is cut to 256 KB before it is sent, and BC's largest batch (1000 notices of
    # ~350 bytes before it switches to a `collection` notice) is about 350 KB.
    max_body_bytes: int = Field(
        512 * 1024, ge=1024, le=64 * 1024 * 1024,
        description="Largest webhook body accepted, in bytes (Content-Length first, then the bytes received); "
                    "larger is refused with 413 before it is parsed. Raise it with MAX_NOTICES.")
    max_notices: int = Field(
        1000, ge=1, le=100_000,
        description="Most Business Central notices in one request (BC sends one `collection` notice instead of "
                    "more than 1000 per subscription); more is refused with 413. BC deletes a subscription "
                    "refused so; the subscriptions timer creates it again and the modified-records timer catches "
                    "up. Raise it when several companies share one notification URL.")
    max_json_depth: int = Field(
        32, ge=8, le=256, description="Deepest JSON nesting accepted in a webhook body; deeper is refused (400).")


_NCRONTAB = r"^\s*(\S+\s+){5}\S+\s*$"  # six fields: second minute hour day month day-of-week


class ScheduleSettings(_Group):
    """Timers (NCRONTAB, six fields with seconds, UTC unless WEBSITE_TIME_ZONE says otherwise) and the history
    kept. Read when the app starts: a change needs a restart, as Azure does on any app-setting change."""

    modified: str = Field("0 */30 * * * *",
                          description="Modified-records sync of every enabled mapping (BC's default: every 30 "
                                      "minutes), the safety net for lost webhooks.")
    subscriptions: str = Field("0 0 */6 * * *",
                               description="Create missing Business Central webhook subscriptions and renew those "
                                           "expiring within RENEW_WITHIN_HOURS (they expire after 3 days).")
    retry: str = Field("0 */10 * * * *",
                       description="Retry records whose last sync failed and that are not skipped.")
    purge: str = Field("0 30 2 * * *",
                       description="Delete jobs and errors older than RETENTION_DAYS.")
    retention_days: int = Field(30, ge=1, le=3650, description="Days of jobs and errors kept.")
    renew_within_hours: float = Field(24.0, gt=0, lt=72, description="Renew a subscription when it expires within "
                                                                     "this many hours.")

    @field_validator("modified", "subscriptions", "retry", "purge")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if not re.match(_NCRONTAB, value):
            raise ValueError(f"must be an NCRONTAB expression of six fields (second minute hour day month "
                             f"day-of-week), e.g. '0 */30 * * * *'; got {value!r}")
        return value.strip()


class AutoPauseSettings(_Group):
    """When a mapping pauses by itself (shared.autopause): its permanent failures (not throttling or outages,
    which are retried) reach FAILURES within MINUTES. Read when the app starts."""

    failures: int = Field(25, ge=0, le=100_000, description="Permanent failures of one mapping within MINUTES "
                                                            "that pause it by itself; 0 turns auto-pause off.")
    minutes: float = Field(10.0, gt=0, le=1440, description="The window, in minutes, FAILURES are counted in.")


class TelemetrySettings(_Group):
    """Traces and metrics (docs/telemetry.md). In Azure, APPLICATIONINSIGHTS_CONNECTION_STRING sends them to
    Application Insights whatever EXPORTER says. Read when the app starts."""

    exporter: str = Field("none", description="Local exporter of traces and metrics: `none` (nothing is recorded), "
                                              "`console` (printed), or `file:PATH` (appended to PATH as JSON lines).")
    activity_flush_s: float = Field(5.0, ge=0.1, le=300,
                                    description="Seconds between two writes of the per-minute activity the console "
                                                "reads (one Table transaction per write, never one per change).")

    @field_validator("exporter")
    @classmethod
    def _exporter(cls, value: str) -> str:
        value = value.strip()
        if value in ("none", "console") or (value.startswith("file:") and value[len("file:"):].strip()):
            return value
        raise ValueError("must be none, console or file:PATH")


class AlertSettings(_Group):
    """What the app reports as an alert condition (infra/modules/alerts.bicep fires on it)."""

    lag_seconds: float = Field(300.0, ge=0, description="End-to-end lag (source modified → written) above which the "
                                                        "processor emits a `lag_high` event, at most once a minute "
                                                        "per mapping and direction; 0 turns it off.")


class AuthSettings(_Group):
    """Who may call the admin API (docs/admin-api.md#authentication). Read when the app starts."""

    easy_auth: bool = Field(
        False, description="App Service Authentication (Easy Auth) is on in front of the app: the admin API "
                           "requires the Entra ID identity it injects (X-MS-CLIENT-PRINCIPAL) and its app roles "
                           "DualSync.Operator / DualSync.Viewer. Set it ONLY where Easy Auth is on (infra/ sets "
                           "both together): elsewhere anyone could send those headers.")


class Settings(BaseSettings):
    """All settings; see the README table or each Field's description."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter=NESTED, extra="ignore",
                                      case_sensitive=False)

    storage: StorageSettings
    erp: ErpSettings
    crm: CrmSettings
    retry: RetrySettings = Field(default_factory=RetrySettings)
    pack_path: Path = Field(Path("templates/bc-sales.yaml"), description="Mapping pack (YAML) to load.")
    queue: QueueSettings = Field(default_factory=QueueSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    schedules: ScheduleSettings = Field(default_factory=ScheduleSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    autopause: AutoPauseSettings = Field(default_factory=AutoPauseSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    public_url: str | None = Field(None, pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
                                   description="The Function App's public base URL, e.g. "
                                               "`https://<app>.azurewebsites.net`; Business Central notification "
                                               "URLs are `<PUBLIC_URL>/api/webhooks/business_central/<entity>`.")

    def secrets(self) -> list[SecretStr]:
        """Every configured secret, for the redactor."""
        found = [self.storage.connection_string, self.erp.client_secret, self.crm.client_secret,
                 self.queue.connection_string, self.webhooks.bc_client_state, self.webhooks.dataverse_key,
                 self.webhooks.fo_key]
        return [s for s in found if s is not None]


class SettingsError(ValueError):
    """Settings are missing or invalid; `problems` lists (env var, what is wrong)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {var}: {why}" for var, why in problems)
        super().__init__(f"{len(problems)} setting(s) missing or invalid:\n{lines}")


def env_name(loc: tuple[str | int, ...]) -> str:
    """The environment variable for a validation location, e.g. ('erp', 'client_id') → DUALSYNC_ERP__CLIENT_ID."""
    return ENV_PREFIX + NESTED.join(str(part).upper() for part in loc)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raises `SettingsError` listing every problem by variable name."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_problems(exc)) from None


_GROUPS: dict[str, type[BaseModel]] = {"storage": StorageSettings, "erp": ErpSettings, "crm": CrmSettings,
                                       "retry": RetrySettings, "queue": QueueSettings, "webhooks": WebhookSettings,
                                       "schedules": ScheduleSettings, "autopause": AutoPauseSettings,
                                       "telemetry": TelemetrySettings, "alerts": AlertSettings}


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if not isinstance(p, int)) or ("",)
        group = _GROUPS.get(str(loc[0])) if len(loc) == 1 else None
        if err["type"] == "missing" and group is not None:
            # A whole group is absent: name each variable that has no default.
            for name, info in group.model_fields.items():
                if info.is_required():
                    problems.append((env_name((loc[0], name)), "missing"))
            if group is StorageSettings:
                problems.append((env_name(("storage", "connection_string")),
                                 f"missing (or set {env_name(('storage', 'account_url'))})"))
            if group is ErpSettings:
                problems.append((env_name(("erp", "company_id")), "missing (Business Central)"))
            continue
        message = err["msg"].removeprefix("Value error, ")
        problems.append((env_name(loc), message))
    return problems


def load_group(group: str, model: type[G], environ: Mapping[str, str] | None = None) -> G:
    """Only the `DUALSYNC_<GROUP>__*` settings, for what is needed when the functions are indexed (timer
    schedules, the admin routes' auth level), before (and whether or not) the other settings are complete."""
    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{group.upper()}{NESTED}"
    values = {key[len(prefix):].lower(): value for key, value in env.items() if key.upper().startswith(prefix)}
    try:
        return model(**values)
    except ValidationError as exc:
        raise SettingsError([(env_name((group, *(str(p) for p in err["loc"]))),
                              err["msg"].removeprefix("Value error, "))
                             for err in exc.errors(include_input=False, include_url=False)]) from None


def load_schedules(environ: Mapping[str, str] | None = None) -> ScheduleSettings:
    return load_group("schedules", ScheduleSettings, environ)


def load_auth(environ: Mapping[str, str] | None = None) -> AuthSettings:
    return load_group("auth", AuthSettings, environ)


def load_autopause(environ: Mapping[str, str] | None = None) -> AutoPauseSettings:
    return load_group("autopause", AutoPauseSettings, environ)
