DELETE FROM test_results WHERE result > 4;
ALTER TABLE test_results DROP CONSTRAINT test_results_result_check;
ALTER TABLE test_results ADD CONSTRAINT test_results_result_check CHECK (result BETWEEN 0 AND 4);
