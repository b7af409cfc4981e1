//! The attention loops compiled for AVX2 (see `rows`).

super::rows::instantiate!(Backend::Avx2, "avx2,fma,bmi1,bmi2");
