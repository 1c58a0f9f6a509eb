DROP TABLE guid_tombstones;
