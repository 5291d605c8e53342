"""HumanEval evaluation: the dataset, prompting, a sandbox that runs generated code with the hidden
tests, pass@k and latency metrics, CO2 tracking and a resource monitor.

Public names (import from the submodules; this package imports nothing heavy):

    humaneval.load_tasks(num_examples=None, task_ids=None) -> list[Task]
    prompting.build_request / postprocess;  programs.build(task, completion, mode) -> Program
    sandbox.Sandbox(...).run(program) -> Verdict
    metrics.pass_at_k, metrics.summarize
    carbon.CarbonTracker, monitor.ResourceMonitor
"""
