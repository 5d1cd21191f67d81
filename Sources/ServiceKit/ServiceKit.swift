/// What the three services share and the wrappers below them do not know: API-key
/// authentication, the transactional outbox relay, and small concurrency helpers.
public enum ServiceKitModule {}
