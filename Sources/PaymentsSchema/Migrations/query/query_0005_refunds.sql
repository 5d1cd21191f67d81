-- Refunds in the read model: each refund is served inside its payment (payments.v1.Payment
-- .refunds); this index finds the payment of a refund ID for GetRefund.
CREATE TABLE query.refunds (
  refund_id   text PRIMARY KEY,
  payment_id  text NOT NULL,
  client_id   text NOT NULL
);
