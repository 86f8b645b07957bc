"""Push refresh: Kustomer's outbound webhooks instead of (most of) the polling.

Kustomer POSTs a "Kustomer Event" to a webhook when a conversation, customer, message, team or
user is created or updated. Three small pieces turn that into fresh tables:

- `receiver` (the `kustomer-assets webhooks` command): a stdlib HTTP endpoint, run as a second
  process beside the Dagster webserver, that checks the webhook's secret header and appends
  each event to a SQLite file (`store`), answering as soon as the row is committed;
- `sensor` (`kustomer_webhook_events`, every 30 s): reads the events after its cursor and
  requests runs for exactly the raw assets and UTC days they touched, so `feedback`'s
  automation condition refreshes it after them;
- `store.recent_webhook_event`: while events keep arriving, the polling `kustomer_changes`
  sensor skips its searches, and resumes them once the webhooks fall quiet (they can be lost or
  disabled by Kustomer after failed deliveries).

Nothing is imported here: `automation` imports `store`, and `sensor` imports `automation`.
"""
