"""What the app tells the people who run it (docs/telemetry.md):

- `events` — structured operational events (the alert rules query them);
- `setup` — turning OpenTelemetry on at app start: Azure Monitor in Azure, plain exporters locally;
- `tracing` / `propagation` / `processing` — one trace per change (webhook → queue → processor → reads and
  writes), the processor's metrics (`instruments`) and its `lag_high` events;
- `activity` — per-minute counts in Table storage for the console;
- `trace_view` — one trace as a readable tree (`make demo`).

Import the submodule you need: this package imports none of them, so `events` stays cheap to import anywhere.
"""
