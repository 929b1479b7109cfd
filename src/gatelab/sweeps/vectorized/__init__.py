"""`hydra/sweeper=vectorized`: Hydra's job list trained a population at a time (`sweeper`;
`plan`: the jobs by population and their values; `population`: a population's children;
`job_folders`: each job's Hydra folder)."""
