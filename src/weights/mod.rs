//! Model files: finding them, loading them strictly into the model, saving in HF layout; torch.save
//! files both ways (HF Trainer's optimizer.pt and scheduler.pt).
pub mod init;
pub mod load;
pub mod pickle;
pub mod pretrained;
pub mod resolve;
pub mod safetensors;
pub mod save;
pub mod torch_save;

pub use load::{load_pretrained, read_checkpoint, LoadReport};
pub use pretrained::{from_pretrained, Pretrained};
pub use resolve::{resolve, ModelFiles, WeightsFile};
pub use save::{save_config, save_pretrained, save_weights, write_atomic};
