-- eventd schema, version 14: the registration's gates are decided in one place.
--
-- eventd_register_run decides the sales and admission gates, set-wise, in
-- the statement that registers. eventd_admission_gate, eventd_use_admission
-- and eventd_sales_open decided the same one registration at a time; nothing
-- but their own tests called them, so they go.

DROP FUNCTION IF EXISTS eventd_admission_gate(uuid, bytea, uuid, timestamptz);
DROP FUNCTION IF EXISTS eventd_use_admission(uuid, bytea, uuid, timestamptz);
DROP FUNCTION IF EXISTS eventd_sales_open(uuid, timestamptz);
