/// The command service: SubmitPayment, idempotency, outbox relay. Placeholder until the command/query issue.
public enum CommandServiceModule {}
