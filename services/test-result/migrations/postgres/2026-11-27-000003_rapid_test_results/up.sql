-- Rapid antigen tests' results (CWA's QUICK_* codes 5 to 9) are stored beside the PCR codes.
ALTER TABLE test_results DROP CONSTRAINT test_results_result_check;
ALTER TABLE test_results ADD CONSTRAINT test_results_result_check CHECK (result BETWEEN 0 AND 9);
