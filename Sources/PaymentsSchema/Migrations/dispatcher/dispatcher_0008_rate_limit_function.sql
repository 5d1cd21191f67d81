-- The limiter's decision in one statement (DispatcherService/RateLimiter.swift, RateLimitWindow):
-- the group's row is locked only for the duration of this function, never across round trips,
-- so a dispatcher that stalls or vanishes mid-decision cannot hold it.
--
-- A call counts from its grant until `window + 1 ms` after `call_until` (its answer, or while in
-- flight the latest it can arrive). A new call is granted only while fewer than `call_limit` calls
-- count; otherwise the result says when to ask again (the earliest moment enough calls can stop
-- counting). Swift's RateLimitWindow.reserve is the same rule; a test compares the two on random
-- states.
CREATE FUNCTION dispatcher.rate_limit_reserve(
  p_group text, p_id bigint, p_maximum_call_us bigint, p_default_limit integer, p_default_window_us bigint,
  p_now bigint DEFAULT NULL
) RETURNS TABLE (granted boolean, wait_until bigint, now_us bigint, call_limit integer, window_us bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_row      dispatcher.rate_limits%ROWTYPE;
  v_now      bigint;
  v_hold     bigint;
  v_ids      bigint[] := '{}';
  v_until    bigint[] := '{}';
  v_finished boolean[] := '{}';
  v_frees    bigint[];
  v_count    integer;
  i          integer;
BEGIN
  INSERT INTO dispatcher.rate_limits (provider, call_limit, window_us)
  VALUES (p_group, p_default_limit, p_default_window_us)
  ON CONFLICT (provider) DO NOTHING;
  SELECT * INTO v_row FROM dispatcher.rate_limits WHERE provider = p_group FOR UPDATE;
  -- The clock is read with the row locked: no decision on this group can come between.
  v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint);
  call_limit := coalesce(v_row.call_limit, p_default_limit);
  window_us := coalesce(v_row.window_us, p_default_window_us);
  IF v_row.call_limit IS NULL OR v_row.window_us IS NULL THEN
    UPDATE dispatcher.rate_limits SET call_limit = rate_limit_reserve.call_limit,
      window_us = rate_limit_reserve.window_us WHERE provider = p_group;
  END IF;
  IF cardinality(v_row.call_ids) <> cardinality(v_row.call_until)
     OR cardinality(v_row.call_ids) <> cardinality(v_row.call_finished) THEN
    RAISE EXCEPTION 'dispatcher.rate_limits row of % is inconsistent', p_group;
  END IF;
  v_hold := window_us + 1000;
  -- The calls that still count.
  FOR i IN 1 .. coalesce(cardinality(v_row.call_ids), 0) LOOP
    IF v_row.call_until[i] + v_hold > v_now THEN
      v_ids := v_ids || v_row.call_ids[i];
      v_until := v_until || v_row.call_until[i];
      v_finished := v_finished || v_row.call_finished[i];
    END IF;
  END LOOP;
  v_count := coalesce(cardinality(v_ids), 0);
  now_us := v_now;
  IF v_count < call_limit THEN
    granted := true;
    wait_until := NULL;
    v_ids := v_ids || p_id;
    v_until := v_until || (v_now + p_maximum_call_us);
    v_finished := v_finished || false;
  ELSE
    granted := false;
    -- The earliest moment a counted call can stop counting: a finished one at its answer plus
    -- the hold; one in flight no earlier than now plus the hold.
    SELECT array_agg(f ORDER BY f) INTO v_frees FROM (
      SELECT CASE WHEN v_finished[k] THEN v_until[k] ELSE least(v_until[k], v_now) END + v_hold AS f
      FROM generate_subscripts(v_ids, 1) AS k) AS t;
    wait_until := greatest(v_frees[v_count - call_limit + 1], v_now + 1);
  END IF;
  IF v_ids IS DISTINCT FROM v_row.call_ids OR v_until IS DISTINCT FROM v_row.call_until THEN
    UPDATE dispatcher.rate_limits SET call_ids = v_ids, call_until = v_until, call_finished = v_finished
    WHERE provider = p_group;
  END IF;
  RETURN NEXT;
END $$;
