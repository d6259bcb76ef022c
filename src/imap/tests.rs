//! Tests against a real server, run only when `IMAPFS_TEST_SERVER` is set.
