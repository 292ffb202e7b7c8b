//! `.slipway/pipeline.yml`: Slipway's pipeline format, after CodePipeline V2.
