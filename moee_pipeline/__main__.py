from moee_pipeline.cli import main

main()
