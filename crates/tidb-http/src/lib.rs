//! TiDB Cloud Serverless HTTP API driver (work in progress).
