//! Redis client over AsyncRead + AsyncWrite (work in progress).
