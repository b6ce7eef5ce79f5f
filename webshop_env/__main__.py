from webshop_env.cli import main

main()
