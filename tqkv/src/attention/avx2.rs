//! The attention loops compiled for AVX2 (see `rows`).

crate::backend::avx2_features!(super::rows::instantiate {});

pub(super) use decode_norms_portable as decode_norms;
