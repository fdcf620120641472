//! The one integration-test binary (every test binary links libtorch; one keeps linking cheap).
mod common;

mod cli;
mod data;
mod dist;
mod metrics;
mod hardening;
mod optim;
mod parity;
mod parquet;
mod pickle;
mod precision;
mod problem_types;
mod recipe;
mod reproduce;
mod schedule;
mod tokenize;
mod train;
mod trainer;
mod weights;
