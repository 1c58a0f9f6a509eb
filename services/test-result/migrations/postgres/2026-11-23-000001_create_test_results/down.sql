DROP TABLE test_results;
