//! Text encoders of the text-to-image models (Sana's Gemma-2 and its tokenizer): the home of
//! the next model family, built on the same [`crate::weights`] loader (sharded checkpoints with
//! an index json) and [`crate::nn`] layers as the autoencoder and the diffusion networks.
