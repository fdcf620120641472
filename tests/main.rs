//! The one integration-test binary (every test binary links libtorch; one keeps linking cheap).
mod common;

mod checkpoint;
mod cli;
mod config_file;
mod data;
mod dist;
mod hardening;
mod lifecycle_faults;
mod metrics;
mod optim;
mod parity;
mod parquet;
mod pickle;
mod plot;
mod precision;
mod predict;
mod problem_types;
mod recipe;
mod reproduce;
mod schedule;
mod tokenize;
mod train;
mod trainer;
mod unpadded;
mod varlen;
mod weights;
