-- Retention deletes keys by the day they refer to (their rolling start).
CREATE INDEX diagnosis_keys_by_rolling_start ON diagnosis_keys (rolling_start_interval_number);
