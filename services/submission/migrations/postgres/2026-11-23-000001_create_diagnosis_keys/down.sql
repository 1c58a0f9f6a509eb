DROP TABLE diagnosis_keys;
