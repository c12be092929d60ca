-- One payment, one trace (issue 12). payments.trace_context (migration 0005) was the trace
-- context of the payment's first detection, kept by the confirmer; the scanner started that
-- trace, apart from the api request that created the payment. Now the api writes the creating
-- request's context with the row, and every service that reports on the payment — the
-- scanner's detection, the confirmer's confirmation, expiry and reorg, the sweeper's rounds —
-- parents its span on it (with a link to what caused the work: a block, a chain head, the
-- expiry pass). The column keeps its shape: a jsonb object of the W3C fields, e.g.
-- {"traceparent": "00-<trace id>-<span id>-01", "tracestate": "..."}; NULL when tracing was off.
COMMENT ON COLUMN payments.trace_context IS
    'W3C trace context (traceparent, tracestate) of the api request that created the payment; every later span of the payment descends from it';

-- Payments created before: their payments.created outbox row holds the request's context.
UPDATE payments p SET trace_context = jsonb_build_object('traceparent', o.headers ->> 'traceparent')
    || CASE WHEN o.headers ? 'tracestate' THEN jsonb_build_object('tracestate', o.headers ->> 'tracestate') ELSE '{}'::jsonb END
FROM outbox o
WHERE o.msg_id = p.id || '.created' AND o.headers ? 'traceparent';
