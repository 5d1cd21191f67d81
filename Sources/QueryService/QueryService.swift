/// The query service: read model projection, GetPayment, ListPayments, WatchPayment. Placeholder until the command/query issue.
public enum QueryServiceModule {}
