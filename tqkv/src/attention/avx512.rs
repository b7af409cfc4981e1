//! The attention loops compiled for AVX-512 (see `rows`).

super::rows::instantiate!(
    Backend::Avx512,
    "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2"
);
