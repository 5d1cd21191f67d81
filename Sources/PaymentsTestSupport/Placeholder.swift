public enum PaymentsTestSupportModule {}
