-- Cancellation (docs/design.md §5, docs/services.md "Cancellation"). A payment that cannot have
-- been charged is cancelled at once, in the cancelling transaction; one whose call is in flight
-- or of unknown outcome is marked here instead: from then on it is never charged again, and the
-- answer of its next inquiry decides between SUCCEEDED (it was charged) and CANCELED.
ALTER TABLE dispatcher.payments ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
