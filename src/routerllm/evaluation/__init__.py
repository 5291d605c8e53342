"""HumanEval evaluation: the dataset, prompting, the Judge (hidden tests on a trusted side, generated
code in a bubblewrap jail), pass@k and latency metrics, CO2 tracking and a resource monitor.

Public names (import from the submodules; this package imports nothing heavy):

    humaneval.load_tasks(num_examples=None, task_ids=None) -> list[Task]
    prompting.build_request / postprocess;  programs.build(task, completion, mode) -> Program
    judge.open_judge(bench).judge(program) -> JudgeVerdict;  jail.Jail (the jail itself)
    metrics.pass_at_k, metrics.summarize
    carbon.CarbonTracker, monitor.ResourceMonitor
"""
