"""Offline tooling for the Pulumi program in `stacks/` (which keeps only the components).

- `workflow_model`: what each GitHub Actions step delivers to a later `pulumi` step (env, tools),
  read step by step from the committed workflows.
- `first_run`: the program under mocks that fail like the real providers at configure time, fed
  only with what the workflow and the stack's ESC environment deliver.
"""
