//! The attention loops compiled for AVX-512 (see `rows`).

crate::backend::avx512_features!(super::rows::instantiate {});
