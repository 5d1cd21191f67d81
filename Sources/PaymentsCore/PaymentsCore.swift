/// The payment domain: money and currencies, the payment lifecycle state machine, validation. Placeholder until the service issues.
public enum PaymentsCoreModule {}
