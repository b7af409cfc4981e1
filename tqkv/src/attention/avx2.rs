//! The attention loops compiled for AVX2 (see `rows`).

crate::backend::avx2_features!(super::rows::instantiate {});
