"""The search sweeper: an Optuna study, each trial scored over every seed, trained as populations.

`python src/train.py -m hydra/sweeper=search 'seed=range(100)'
'optimizer.learning_rate=tag(log, interval(0.01, 5))' 'optimizer.momentum=interval(0, 0.99)'`
asks Optuna for `batch_size` trials at a time (ask-and-tell), trains every trial x seed of the
batch as one population (`engine.population`: each member as its single run would train) and
tells each trial its objective, a number of its seeds' outcomes (`summary.group_metrics`). A
config the population engine cannot train (`optimizer=adam`), or a search without seeds, runs
each trial's jobs through the configured launcher instead. The study lives in Optuna's storage,
so the same command resumes it and several processes share it (docs/search.md).
"""

import logging
from typing import Any

import optuna
from hydra.core.utils import JobStatus
from omegaconf import DictConfig
from optuna.trial import Trial, TrialState

from gatelab import stopping
from gatelab.config import validate
from gatelab.config.checks import require
from gatelab.errors import ConfigError, one_line
from gatelab.sweeps.members import (
    VALUE_KEYS,
    Members,
    ValueChecker,
    apply_sweep_defaults,
    train_members,
)
from gatelab.sweeps.results import read_results
from gatelab.sweeps.search.records import TrialOutcome, seed_result, study_params, trial_name
from gatelab.sweeps.search.space import SearchSpace, check_values, search_space_of
from gatelab.sweeps.search.study import (
    Settings,
    check,
    check_scored_on,
    objective_values,
    open_study,
    scored_on,
)
from gatelab.sweeps.search.study_run import StudyRun
from gatelab.sweeps.search.trials import (
    BEYOND_ATTR,
    FAILURE_ATTR,
    STOPPED,
    STUDY_STOPPED,
    claim,
    fail_dead_trials,
    finished_trials,
    scored_best,
    to_ask,
    trial_metrics,
    within_n_trials,
)
from gatelab.sweeps.shards import (
    ShardedMembers,
    ShardLauncher,
    train_in_shards,
    train_members_shard,
)
from gatelab.sweeps.summary import JobResult
from gatelab.sweeps.sweeper import SweeperImpl, launch_batches, one_by_one_reason, task_config
from gatelab.tracking.naming import config_params, short_keys

log = logging.getLogger(__name__)


class SearchSweeperImpl(SweeperImpl):
    """What `hydra/sweeper=search` does: ask -> score -> tell, a batch of trials at a time."""

    def __init__(self, settings: Settings, n_shards: int = 1):
        super().__init__(settings.params)
        self.settings = settings
        # A batch's members cut into this many shards, each a job of hydra/launcher (docs/scale.md).
        self.n_shards = n_shards
        self.shard_launcher: ShardLauncher | None = None
        self.set_on_command_line: set[str] = set()

    def sweep(self, arguments: list[str]) -> optuna.Study:
        settings = self.settings
        given = self.given(arguments)
        space = search_space_of(self.parsed(arguments), settings.seed_key)
        check(settings, space)
        require(
            self.n_shards >= 1,
            "hydra.sweeper.n_shards",
            self.n_shards,
            "a number of shards a batch's members are cut into, at least 1 (1: in this process)",
        )
        cfg = self.compose(space.fixed)
        self.set_on_command_line = {override.split("=", 1)[0] for override in given}
        apply_sweep_defaults(cfg, self.set_on_command_line)
        task_cfg = task_config(cfg)
        validate(task_cfg)
        StudyRun.check(self.config, list(space.distributions))
        reason = self._fallback_reason(task_cfg, space)
        checker = ValueChecker(task_cfg)
        for seed in space.seeds or []:
            checker.checked_value(settings.seed_key, seed)
        # Refused now, not trial by trial once the study has asked them.
        self.check_searchable(space, checker, one_by_one=reason is not None)
        searched = list(space.distributions)
        # What every trial shares: the composed config but the values a trial or seed varies.
        shared = {
            key: value
            for key, value in config_params(task_cfg).items()
            if key not in (*searched, settings.seed_key)
        }
        choices = dict(cfg.hydra.runtime.choices)
        with self.timings.timed("optuna"):
            study = open_study(settings, space, given)
            # A study of other seeds, space, objective or config is refused before it changes.
            check_scored_on(study, scored_on(settings, space, choices, shared))
            dead = fail_dead_trials(study)
        if dead:
            log.warning(
                "trial(s) %s were left RUNNING by a process that died: told FAIL",
                ", ".join(map(str, dead)),
            )
        self.save_multirun_yaml()
        seeds = len(space.seeds) if space.seeds is not None else 1
        study_run = StudyRun.open(
            self.config,
            swept=searched,
            name=f"search {' '.join(short_keys(searched).values())}",
            params={**shared, **study_params(study.study_name, settings, space)},
            # Its children: a run per trial, or per trial x seed when its jobs run one by one.
            planned=settings.n_trials * (seeds if reason is not None else 1),
            tags={"optuna.study_name": study.study_name},
            resume_folder=False,
        )
        study_run.start(study, settings, shared, choices, self.timings)
        if reason is not None:
            log.info("each trial's jobs run one by one: %s", reason)
        log.info(
            "search: study %r, %d of %d trials done, %s",
            study.study_name,
            len(finished_trials(study.get_trials(deepcopy=False))),
            settings.n_trials,
            f"{len(space.seeds)} seeds a trial" if space.seeds else "one job a trial",
        )
        asked: list[Trial] = []
        try:
            while (batch_size := self._to_ask(study)) > 0:
                stopping.check()
                asked = []
                for _ in range(batch_size):
                    with self.timings.timed("optuna"):
                        trial = study.ask(fixed_distributions=space.distributions)
                        claim(trial)
                    if self._within_n_trials(study, trial):
                        asked.append(trial)
                if not asked:
                    break
                if reason is None:
                    self._train_batch(study, study_run, asked, task_cfg, space, checker)
                else:
                    self._launch_batch(study, study_run, asked, space)
                asked = []
                self._check_failures(study)
                stopping.check()
        except KeyboardInterrupt:
            self._fail_asked(study, asked, STOPPED)
            study_run.finish(interrupted=True)
            raise
        except BaseException as error:
            self._fail_asked(study, asked, STUDY_STOPPED)
            study_run.finish(error=error)
            raise
        log.info("search timings: %s", self.timings)
        study_run.finish()
        return study

    def check_searchable(self, space: SearchSpace, checker: ValueChecker, one_by_one: bool) -> None:
        """Refuse in one line a searched key the config lacks or a choice its schema refuses
        (`space.check_values`), as a trial would meet it: composed into a job's config when
        trials run `one_by_one`, else checked by `checker`, as a population's members are."""

        def check(key: str, value: Any, every: bool) -> None:
            if one_by_one:
                cfg = self.compose([*space.fixed, f"{key}={value}"])
                if every:
                    validate(task_config(cfg))
            elif every:  # a population's keys are the value keys: a range's values compose
                checker.checked_value(key, value)

        check_values(space, check)

    def _to_ask(self, study: optuna.Study) -> int:
        """The next batch's size: `n_trials` counts the study's trials that finished for their
        own values, whoever ran them (`trials.counted_trials`)."""
        with self.timings.timed("optuna"):
            trials = study.get_trials(deepcopy=False)
        return to_ask(trials, self.settings.n_trials, self.settings.batch_size)

    def _within_n_trials(self, study: optuna.Study, trial: Trial) -> bool:
        """Whether `trial` is one of the study's first `n_trials`; if not (another process
        asked the last ones at the same moment), it is told PRUNED, marked as beyond them."""
        with self.timings.timed("optuna"):
            trials = study.get_trials(deepcopy=False)
            if within_n_trials(trials, trial.number, self.settings.n_trials):
                return True
            trial.set_user_attr(BEYOND_ATTR, True)
            study.tell(trial, state=TrialState.PRUNED)
        return False

    def _train_batch(
        self,
        study: optuna.Study,
        study_run: StudyRun,
        trials: list[Trial],
        task_cfg: DictConfig,
        space: SearchSpace,
        checker: ValueChecker,
    ) -> None:
        """Train every trial x seed of the batch as one population; tell each trial its score."""
        told: list[TrialOutcome] = []
        valid: list[tuple[Trial, dict[str, Any]]] = []
        for trial in trials:
            try:
                typed = {
                    key: checker.checked_value(key, value) for key, value in trial.params.items()
                }
            except ConfigError as error:
                told.append(self._tell_failed(study, trial, error))
                continue
            valid.append((trial, typed))
        if not valid:
            study_run.log(told)
            return
        seeds = space.seeds
        member_values = [
            checker.member_values({**typed, "seed": seed}) for _, typed in valid for seed in seeds
        ]
        log.info(
            "training trials %s x %d seeds (%d members)",
            ", ".join(str(trial.number) for trial, _ in valid),
            len(seeds),
            len(member_values),
        )
        with self.timings.timed("training"):
            members = self._train(task_cfg, member_values, space)
        for index, (trial, _) in enumerate(valid):
            results = []
            for offset, seed in enumerate(seeds):
                member = index * len(seeds) + offset
                results.append(
                    seed_result(
                        seed, members.loss(member), members.outcome(member), self.settings.seed_key
                    )
                )
            told.append(self._tell_scored(study, trial, results))
        study_run.log(told)
        best = scored_best(study)
        log.info(
            "trained %d trials x %d seeds (%d members); %d trials in the study, best %s",
            len(valid),
            len(seeds),
            len(member_values),
            len(study.get_trials(deepcopy=False)),
            ", ".join(trial_name(t.number, t.params) for t in best[:3]) or "none",
        )

    def _train(
        self, task_cfg: DictConfig, member_values: list[dict[str, Any]], space: SearchSpace
    ) -> Members | ShardedMembers:
        """A batch's members trained here, or in `n_shards` shards through the launcher."""
        if self.n_shards == 1:
            return train_members(task_cfg, member_values)
        if self.shard_launcher is None:
            self.shard_launcher = ShardLauncher(
                self.hydra_context, self.config, train_members_shard
            )
        fixed, keys = space.fixed, self.set_on_command_line
        return train_in_shards(self.shard_launcher, fixed, member_values, keys, self.n_shards)

    def _launch_batch(
        self, study: optuna.Study, study_run: StudyRun, trials: list[Trial], space: SearchSpace
    ) -> None:
        """The batch's jobs (each trial's, one per seed or one) through the launcher, as few
        launches as the trials' numbers allow (joblib runs a launch's jobs side by side); each
        trial scored from its jobs' runs.

        A job's number is its trial's number x seeds + the seed's place, so a launch is a run
        of consecutive trial numbers (a study shared with other sweeps may leave gaps).
        """
        key = self.settings.seed_key
        seeds = space.seeds or [None]
        by_number = {trial.number: trial for trial in trials}
        for numbers in launch_batches(list(by_number), None):
            consecutive = [by_number[number] for number in numbers]
            stopping.check()
            jobs = [
                space.overrides(trial.params) + ([f"{key}={seed}"] if seed is not None else [])
                for trial in consecutive
                for seed in seeds
            ]
            first = consecutive[0].number * len(seeds)
            with self.timings.timed("training"):
                returns = self.launcher.launch(jobs, initial_job_idx=first)
            with self.timings.timed("mlflow"):
                by_number = {
                    result.number: result
                    for result in read_results(study_run.client, study_run.run_id, [key])
                }
            told = []
            for index, trial in enumerate(consecutive):
                mine = slice(index * len(seeds), (index + 1) * len(seeds))
                numbers = range(first + mine.start, first + mine.stop)
                results = [by_number[number] for number in numbers if number in by_number]
                failed = [job for job in returns[mine] if job.status == JobStatus.FAILED]
                if len(failed) == len(seeds):
                    told.append(self._tell_failed(study, trial, failed[0]._return_value))
                else:
                    told.append(self._tell_scored(study, trial, results))
            study_run.log(told)

    def _tell_scored(
        self, study: optuna.Study, trial: Trial, results: list[JobResult]
    ) -> TrialOutcome:
        """Tell Optuna the trial's objective values, a number of its seeds' outcomes."""
        metrics = trial_metrics(results)
        values = objective_values(metrics, self.settings.objective)
        for name, value in metrics.items():
            trial.set_user_attr(name, value)
        with self.timings.timed("optuna"):
            frozen = study.tell(trial, values)
        return TrialOutcome(frozen, metrics, results)

    def _tell_failed(self, study: optuna.Study, trial: Trial, error: BaseException) -> TrialOutcome:
        """Tell Optuna the trial FAILED, its reason kept as a user attribute."""
        trial.set_user_attr(FAILURE_ATTR, one_line(error))
        log.warning("trial %d failed: %s", trial.number, one_line(error))
        with self.timings.timed("optuna"):
            frozen = study.tell(trial, state=TrialState.FAIL)
        return TrialOutcome(frozen, {}, [], error)

    def _fail_asked(self, study: optuna.Study, asked: list[Trial], reason: str) -> None:
        """Tell the batch's untold trials FAIL: a stopped study keeps no RUNNING trial."""
        for trial in asked:
            if study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                trial.set_user_attr(FAILURE_ATTR, reason)
                study.tell(trial, state=TrialState.FAIL)

    def _check_failures(self, study: optuna.Study) -> None:
        """`max_failure_rate`: a study whose trials fail too often stops, in one line."""
        trials = [
            trial
            for trial in finished_trials(study.get_trials(deepcopy=False))
            if trial.state in (TrialState.COMPLETE, TrialState.FAIL)
        ]
        failed = [trial for trial in trials if trial.state == TrialState.FAIL]
        if trials and len(failed) / len(trials) > self.settings.max_failure_rate:
            last = failed[-1].user_attrs.get(FAILURE_ATTR, "")
            raise ConfigError(
                f"hydra.sweeper.max_failure_rate={self.settings.max_failure_rate:g}: "
                f"{len(failed)} of {len(trials)} trials failed (the last: {last}); narrow the "
                "search space, or allow more failures with hydra.sweeper.max_failure_rate"
            )

    def _fallback_reason(self, task_cfg: DictConfig, space: SearchSpace) -> str | None:
        if space.seeds is None:
            key = self.settings.seed_key
            return f"{key} is not swept (e.g. '{key}=range(100)')"
        other = [key for key in space.distributions if key not in VALUE_KEYS]
        if other:
            varied = ", ".join(VALUE_KEYS[1:])
            return f"{', '.join(other)} is searched (a population's members differ in {varied})"
        return one_by_one_reason(task_cfg)
