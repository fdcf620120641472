//! The one integration-test binary (every test binary links libtorch; one keeps linking cheap).
mod common;

mod cli;
mod data;
mod parity;
mod parquet;
mod pickle;
mod reproduce;
mod tokenize;
mod train;
mod trainer;
mod unpadded;
mod weights;
