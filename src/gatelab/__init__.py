"""gatelab: the networks of 'Getting started with TensorFlow 2', chapter 3, as configuration."""
